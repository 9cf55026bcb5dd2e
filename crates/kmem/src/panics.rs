//! Panic payloads of the callbacks kmem runs (a typed cache's constructor or destructor, a
//! shrinker under kswapd, a C export's body in `kmem-ffi`): their message for a report, and
//! dropping them without a second panic escaping.

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};

/// The message a panic was raised with (`panic!("...")` or a formatted one), if it is text.
pub fn panic_message(payload: &(dyn Any + Send)) -> Option<&str> {
    payload.downcast_ref::<&str>().copied().or_else(|| payload.downcast_ref::<String>().map(String::as_str))
}

/// Drops a panic payload without letting a panic in its own `Drop` escape.
pub(crate) fn discard(payload: Box<dyn Any + Send>) {
    if let Err(again) = panic::catch_unwind(AssertUnwindSafe(move || drop(payload))) {
        std::mem::forget(again);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn panic_message_reads_both_string_payloads() {
        let literal = std::panic::catch_unwind(|| panic!("literal")).unwrap_err();
        let formatted = std::panic::catch_unwind(|| panic!("formatted {}", 7)).unwrap_err();
        let other = std::panic::catch_unwind(|| std::panic::panic_any(7u8)).unwrap_err();
        assert_eq!(super::panic_message(&*literal), Some("literal"));
        assert_eq!(super::panic_message(&*formatted), Some("formatted 7"));
        assert_eq!(super::panic_message(&*other), None);
    }
}
