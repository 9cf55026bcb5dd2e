/* struct_size(), struct_size_t() and flex_array_size() of a constant count are constant
 * expressions, as the kernel's __builtin_choose_expr(__is_constexpr(count), ...) forms
 * (include/linux/overflow.h; lib/test_overflow.c sizes an array with one): a file-scope array
 * bound, BUILD_BUG_ON, a static initializer. A constant count too large still gives SIZE_MAX;
 * a variable count still saturates through size_mul/size_add. */
#include <linux/overflow.h>
#include <linux/kernel.h>
#include <linux/slab.h>
#include "ktest.h"

struct blob {
	int n;
	u16 data[];
};

struct bytes {
	long hdr;
	u8 data[];
};

static u8 file_buf[struct_size_t(struct blob, data, 4)];
static const size_t static_size = struct_size_t(struct blob, data, 10);

int main(void)
{
	struct blob *p = NULL;
	struct bytes *b = NULL;
	u8 arr[struct_size((struct blob *)0, data, 55)];
	volatile size_t big = SIZE_MAX / 2;
	volatile u8 nbytes = 200;

	BUILD_BUG_ON(struct_size(p, data, 2) != sizeof(*p) + 4);
	BUILD_BUG_ON(flex_array_size(p, data, 3) != 6);
	BUILD_BUG_ON(struct_size(b, data, 5) != sizeof(long) + 5);
	CHECK_EQ_UL(sizeof(arr), sizeof(struct blob) + 110);
	CHECK_EQ_UL(sizeof(file_buf), sizeof(struct blob) + 8);
	CHECK_EQ_UL(static_size, sizeof(struct blob) + 20);
	/* Constants too large saturate rather than wrap to a small size. */
	CHECK_EQ_UL(struct_size(p, data, SIZE_MAX / 2), SIZE_MAX);
	CHECK_EQ_UL(flex_array_size(p, data, SIZE_MAX / 2 + 1), SIZE_MAX);
	CHECK_EQ_UL(struct_size(b, data, SIZE_MAX - 1), SIZE_MAX);
	CHECK_EQ_UL(struct_size(b, data, SIZE_MAX - sizeof(long)), SIZE_MAX);
	CHECK_EQ_UL(struct_size(b, data, -1), SIZE_MAX);
	/* Variable counts, as before. */
	CHECK_EQ_UL(struct_size(p, data, big), SIZE_MAX);
	CHECK_EQ_UL(flex_array_size(p, data, big + 1), SIZE_MAX);
	/* A variable count of a narrow type: no -Wtype-limits from the constant form's branch. */
	big = SIZE_MAX - 1;
	CHECK_EQ_UL(struct_size(b, data, big), SIZE_MAX);
	CHECK_EQ_UL(struct_size(b, data, nbytes), sizeof(long) + 200);
	CHECK_EQ_UL(flex_array_size(p, data, nbytes), 400);
	big = 7;
	CHECK_EQ_UL(struct_size(p, data, big), sizeof(*p) + 14);
	p = kmalloc(struct_size(p, data, 8), GFP_KERNEL);
	CHECK(p != NULL);
	kfree(p);
	CHECK(kmalloc(struct_size(p, data, SIZE_MAX / 2), GFP_KERNEL | __GFP_NOWARN) == NULL);
	return ktest_result("struct_size_const");
}
