/* The seed's section 5.1 portability helpers: fixed-size types, byte order, unaligned access. */
#include <linux/types.h>
#include <asm/byteorder.h>
#include <asm/unaligned.h>
#include "ktest.h"

typedef struct {
	u16 index;
	u16 data;
	u8 data2;
} __attribute__((packed)) testctl_t;	/* the seed's packed structure */

int main(void)
{
	unsigned char buf[16] = { 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99 };
	u32 v;

	CHECK(sizeof(u8) == 1 && sizeof(u16) == 2 && sizeof(u32) == 4 && sizeof(u64) == 8);
	CHECK(sizeof(s8) == 1 && sizeof(s16) == 2 && sizeof(s32) == 4 && sizeof(s64) == 8);
	CHECK(sizeof(__u8) == 1 && sizeof(__u64) == 8 && sizeof(__s32) == 4);
	CHECK((s8)-1 < 0 && (u8)-1 == 255);
	CHECK_EQ_UL(sizeof(testctl_t), 5);
#ifdef __LITTLE_ENDIAN
	CHECK_EQ_UL(__LITTLE_ENDIAN, 1234);
#else
	CHECK(!"__LITTLE_ENDIAN is defined");
#endif
	CHECK_EQ_UL(cpu_to_le32(0x11223344), 0x11223344);
	CHECK_EQ_UL(cpu_to_be32(0x11223344), 0x44332211);
	CHECK_EQ_UL(be16_to_cpu(0x1234), 0x3412);
	CHECK_EQ_UL(be64_to_cpu(0x0102030405060708ULL), 0x0807060504030201ULL);
	CHECK_EQ_UL(le16_to_cpu(0x1234), 0x1234);
	CHECK_EQ_UL(htonl(1), 0x01000000);

	/* get_unaligned/put_unaligned at odd addresses. */
	v = get_unaligned((u32 *)(buf + 1));
	CHECK_EQ_UL(v, 0x44332211);
	put_unaligned(0xdeadbeef, (u32 *)(buf + 7));
	CHECK(buf[7] == 0xef && buf[8] == 0xbe && buf[9] == 0xad && buf[10] == 0xde);
	CHECK_EQ_UL(get_unaligned_be16(buf + 1), 0x1122);
	CHECK_EQ_UL(get_unaligned_le16(buf + 1), 0x2211);
	put_unaligned_be32(0x01020304, buf + 3);
	CHECK(buf[3] == 1 && buf[4] == 2 && buf[5] == 3 && buf[6] == 4);
	return ktest_result("byteorder");
}
