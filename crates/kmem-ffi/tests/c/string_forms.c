/* strscpy in both of its forms (6.8+): strscpy(dest, src, size) and strscpy(dest, src) with
 * the size of the array dest; both copy at most size - 1 bytes, always terminate, and return
 * the length or -E2BIG on truncation. The two-argument form of a pointer does not compile
 * (c_abi checks that). */
#include <linux/string.h>
#include "ktest.h"

struct dev {
	char name[8];
	int id;
};

int main(void)
{
	struct dev d = { .id = 7 };
	char buf[4];

	CHECK(strscpy(d.name, "eth0") == 4 && strcmp(d.name, "eth0") == 0);
	CHECK(strscpy(d.name, "a-long-name") == -E2BIG && strcmp(d.name, "a-long-") == 0);
	CHECK(d.id == 7);	/* nothing written past the array */
	CHECK(strscpy(buf, "abc") == 3);
	CHECK(strscpy(buf, "abcd") == -E2BIG && strcmp(buf, "abc") == 0);
	CHECK(strscpy(buf, "xyz", 2) == -E2BIG && strcmp(buf, "x") == 0);
	CHECK(sized_strscpy(buf, "q", sizeof(buf)) == 1);
	return ktest_result("string_forms");
}
