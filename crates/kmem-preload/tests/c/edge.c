/* Edge cases of every function libkmem_preload.so exports, checked against glibc's documented
 * behaviour. Runs the same with and without the preload (so glibc itself validates the
 * expectations); `--preload` adds the checks only kmem can pass (kmalloc's size classes, foreign
 * pointers given to free). Prints one "ok <check>" line per check and "all ok" at the end;
 * exits 1 at the first failure. */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define PAGE 4096UL

static int preload;
/* Read through volatiles so the compiler neither warns about nor folds the impossible requests. */
static volatile size_t huge = SIZE_MAX;
static volatile size_t half = SIZE_MAX / 2;
static volatile size_t ptrdiff_max = PTRDIFF_MAX;

#define CHECK(cond, ...)                                                        \
    do {                                                                        \
        if (!(cond)) {                                                          \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);     \
            fprintf(stderr, __VA_ARGS__);                                       \
            fprintf(stderr, "\n");                                              \
            exit(1);                                                            \
        }                                                                       \
    } while (0)

static void fill(unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(seed + i * 31);
}

static int holds(const unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)(seed + i * 31))
            return 0;
    return 1;
}

/* Sizes around every kmalloc class boundary, and beyond kmalloc's 4 MiB. */
static const size_t sizes[] = {0,    1,    7,    8,    9,     15,    16,    17,    24,      31,
                               32,   33,   63,   64,   65,    96,    97,    127,   128,     129,
                               192,  193,  255,  256,  257,   511,   512,   513,   1000,    1024,
                               2047, 2048, 2049, 4095, 4096,  4097,  8191,  8192,  8193,    12288,
                               65536, 100000, 1 << 20, (4 << 20) - 1, 4 << 20, (4 << 20) + 1,
                               5 << 20, 64 << 20};
#define NSIZES (sizeof(sizes) / sizeof(sizes[0]))

static void check_malloc(void) {
    void *ptrs[NSIZES];
    for (size_t i = 0; i < NSIZES; i++) {
        size_t n = sizes[i];
        unsigned char *p = malloc(n);
        CHECK(p != NULL, "malloc(%zu)", n);
        CHECK((uintptr_t)p % 16 == 0, "malloc(%zu) = %p is not 16-aligned", n, (void *)p);
        CHECK(malloc_usable_size(p) >= n, "usable %zu < %zu", malloc_usable_size(p), n);
        fill(p, n, (unsigned)i);
        ptrs[i] = p;
    }
    for (size_t i = 0; i < NSIZES; i++) {
        CHECK(holds(ptrs[i], sizes[i], (unsigned)i), "malloc(%zu) contents", sizes[i]);
        for (size_t j = 0; j < i; j++)
            CHECK(ptrs[i] != ptrs[j], "malloc returned %p twice", ptrs[i]);
        free(ptrs[i]);
    }
    free(NULL);
    CHECK(malloc_usable_size(NULL) == 0, "malloc_usable_size(NULL)");
    errno = 0;
    CHECK(malloc(huge) == NULL && errno == ENOMEM, "malloc(SIZE_MAX)");
    errno = 0;
    CHECK(malloc(ptrdiff_max + 1) == NULL && errno == ENOMEM, "malloc(PTRDIFF_MAX + 1)");
    printf("ok malloc free malloc_usable_size\n");
}

static void check_calloc(void) {
    for (size_t i = 0; i < NSIZES; i++) {
        size_t n = sizes[i];
        unsigned char *dirty = malloc(n);
        CHECK(dirty != NULL, "malloc(%zu)", n);
        memset(dirty, 0xff, n);
        free(dirty);
        unsigned char *p = calloc(1, n);
        CHECK(p != NULL, "calloc(1, %zu)", n);
        for (size_t j = 0; j < n; j++)
            CHECK(p[j] == 0, "calloc(1, %zu) byte %zu is %d", n, j, p[j]);
        free(p);
    }
    unsigned char *q = calloc(1000, 24);
    CHECK(q != NULL && malloc_usable_size(q) >= 24000, "calloc(1000, 24)");
    free(q);
    q = calloc(0, 5);
    CHECK(q != NULL, "calloc(0, 5) is a unique pointer");
    free(q);
    errno = 0;
    CHECK(calloc(half, 3) == NULL && errno == ENOMEM, "calloc overflow");
    errno = 0;
    CHECK(calloc(3, half) == NULL && errno == ENOMEM, "calloc overflow");
    printf("ok calloc\n");
}

static void check_realloc(void) {
    /* Grow through every class, keeping the contents. */
    unsigned char *p = realloc(NULL, 10);
    CHECK(p != NULL, "realloc(NULL, 10)");
    fill(p, 10, 7);
    size_t have = 10;
    for (size_t i = 0; i < NSIZES; i++) {
        size_t n = sizes[i];
        if (n <= have)
            continue;
        p = realloc(p, n);
        CHECK(p != NULL, "realloc grow to %zu", n);
        CHECK(holds(p, have, 7), "realloc grow to %zu lost data", n);
        CHECK(malloc_usable_size(p) >= n, "usable after realloc to %zu", n);
        fill(p, n, 7);
        have = n;
    }
    /* Shrink back down, keeping the prefix. */
    for (size_t i = NSIZES; i-- > 1;) {
        size_t n = sizes[i];
        if (n >= have)
            continue;
        p = realloc(p, n);
        CHECK(p != NULL, "realloc shrink to %zu", n);
        CHECK(holds(p, n, 7), "realloc shrink to %zu lost data", n);
        CHECK(malloc_usable_size(p) >= n, "usable after shrink to %zu", n);
        have = n;
    }
    /* A failed realloc leaves the block alone. */
    errno = 0;
    CHECK(realloc(p, huge) == NULL && errno == ENOMEM, "realloc(p, SIZE_MAX)");
    CHECK(holds(p, have, 7), "block intact after a failed realloc");
    /* realloc(p, 0) frees p and returns NULL (glibc). */
    CHECK(realloc(p, 0) == NULL, "realloc(p, 0)");
    p = realloc(NULL, 0);
    CHECK(p != NULL, "realloc(NULL, 0) is malloc(0)");
    free(p);
    /* An aligned block can be reallocated. */
    void *a = NULL;
    CHECK(posix_memalign(&a, 256, 100) == 0, "posix_memalign");
    fill(a, 100, 3);
    a = realloc(a, 20000);
    CHECK(a != NULL && holds(a, 100, 3), "realloc of an aligned block");
    free(a);
    printf("ok realloc\n");
}

static void check_reallocarray(void) {
    unsigned char *p = reallocarray(NULL, 10, 10);
    CHECK(p != NULL && malloc_usable_size(p) >= 100, "reallocarray(NULL, 10, 10)");
    fill(p, 100, 9);
    errno = 0;
    CHECK(reallocarray(p, half, 3) == NULL && errno == ENOMEM, "reallocarray overflow");
    CHECK(holds(p, 100, 9), "block intact after reallocarray overflow");
    p = reallocarray(p, 1000, 10);
    CHECK(p != NULL && holds(p, 100, 9), "reallocarray grow");
    free(p);
    printf("ok reallocarray\n");
}

static void check_posix_memalign(void) {
    for (size_t align = sizeof(void *); align <= (16UL << 20); align *= 2) {
        const size_t want[] = {0, 1, align / 2 + 1, align, align + 1, 3 * align, 5 << 20};
        for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
            void *p = NULL;
            int rc = posix_memalign(&p, align, want[i]);
            CHECK(rc == 0 && p != NULL, "posix_memalign(%zu, %zu) = %d", align, want[i], rc);
            CHECK((uintptr_t)p % align == 0, "posix_memalign(%zu, %zu) = %p", align, want[i], p);
            CHECK(malloc_usable_size(p) >= want[i], "usable of posix_memalign(%zu, %zu)", align, want[i]);
            memset(p, 0xab, want[i]);
            free(p);
        }
    }
    const size_t bad[] = {0, 1, 2, 3, 4, 12, 24, 48, 4097, SIZE_MAX};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        void *sentinel = (void *)0x1234;
        void *p = sentinel;
        errno = 1234;
        int rc = posix_memalign(&p, bad[i], 16);
        CHECK(rc == EINVAL, "posix_memalign(%zu) = %d, want EINVAL", bad[i], rc);
        CHECK(p == sentinel, "posix_memalign(%zu) wrote *memptr", bad[i]);
        CHECK(errno == 1234, "posix_memalign(%zu) changed errno", bad[i]);
    }
    void *p = (void *)0x1234;
    errno = 1234;
    CHECK(posix_memalign(&p, 64, huge) == ENOMEM && p == (void *)0x1234, "posix_memalign ENOMEM");
    CHECK(errno == 1234, "posix_memalign ENOMEM changed errno");
    printf("ok posix_memalign\n");
}

static void check_aligned_forms(void) {
    for (size_t align = 1; align <= (8UL << 20); align *= 2) {
        void *p = aligned_alloc(align, 3 * align);
        CHECK(p != NULL && (uintptr_t)p % align == 0, "aligned_alloc(%zu)", align);
        CHECK(malloc_usable_size(p) >= 3 * align, "usable of aligned_alloc(%zu)", align);
        free(p);
        p = memalign(align, 100);
        CHECK(p != NULL && (uintptr_t)p % align == 0, "memalign(%zu)", align);
        free(p);
    }
    /* memalign rounds an alignment that is not a power of two up to one. */
    void *p = memalign(24, 100);
    CHECK(p != NULL && (uintptr_t)p % 32 == 0, "memalign(24)");
    free(p);
    p = memalign(3000, 10);
    CHECK(p != NULL && (uintptr_t)p % 4096 == 0, "memalign(3000)");
    free(p);
    errno = 0;
    CHECK(memalign(half + 2, 10) == NULL && errno == EINVAL, "memalign of a huge alignment");
    errno = 0;
    CHECK(memalign(64, huge) == NULL && errno == ENOMEM, "memalign(64, SIZE_MAX)");
    p = valloc(10);
    CHECK(p != NULL && (uintptr_t)p % PAGE == 0 && malloc_usable_size(p) >= 10, "valloc(10)");
    free(p);
    p = valloc(3 * PAGE + 1);
    CHECK(p != NULL && (uintptr_t)p % PAGE == 0 && malloc_usable_size(p) >= 3 * PAGE + 1, "valloc");
    free(p);
    p = pvalloc(10);
    CHECK(p != NULL && (uintptr_t)p % PAGE == 0 && malloc_usable_size(p) >= PAGE, "pvalloc(10)");
    free(p);
    p = pvalloc(PAGE + 1);
    CHECK(p != NULL && (uintptr_t)p % PAGE == 0 && malloc_usable_size(p) >= 2 * PAGE, "pvalloc");
    free(p);
    errno = 0;
    CHECK(pvalloc(huge - 10) == NULL && errno == ENOMEM, "pvalloc overflow");
    printf("ok aligned_alloc memalign valloc pvalloc\n");
}

/* Aligned_alloc's C17 rule (glibc 2.38; some older glibcs accept any alignment). */
static void check_aligned_alloc_einval(void) {
    errno = 0;
    void *p = aligned_alloc(24, 48);
    CHECK(p == NULL && errno == EINVAL, "aligned_alloc(24) = %p", p);
    errno = 0;
    p = aligned_alloc(0, 48);
    CHECK(p == NULL && errno == EINVAL, "aligned_alloc(0) = %p", p);
    printf("ok aligned_alloc EINVAL\n");
}

/* ---- threads ---- */

#define NTHREADS 8
#define ROUNDS 20000

static void *volatile handoff[NTHREADS];
static pthread_key_t late_key;

/* Runs after every thread-local destructor of the thread (kmem's CPU-slot hand-back among
 * them): allocates and frees during the thread's teardown. */
static void late_destructor(void *value) {
    unsigned char *q = malloc(300);
    CHECK(q != NULL, "malloc in a pthread key destructor");
    fill(q, 300, 5);
    CHECK(holds(q, 300, 5), "late block");
    free(q);
    free(value);
}

extern int __cxa_thread_atexit_impl(void (*)(void *), void *, void *);
extern void *__dso_handle;

/* Runs among the thread-local destructors. */
static void tls_destructor(void *value) {
    CHECK(holds(value, 200, 4), "thread-local block");
    free(value);
    free(malloc(5000));
}

static void *worker(void *arg) {
    unsigned id = (unsigned)(uintptr_t)arg;
    unsigned seed = id * 2654435761u;
    unsigned char *keep[64] = {0};
    size_t keep_n[64] = {0};
    for (int r = 0; r < ROUNDS; r++) {
        seed = seed * 1103515245u + 12345u;
        size_t slot = seed % 64;
        size_t n = (seed >> 8) % (seed % 16 == 0 ? 20000 : 600);
        if (keep[slot]) {
            CHECK(holds(keep[slot], keep_n[slot], (unsigned)slot + id), "thread %u block", id);
            free(keep[slot]);
        }
        keep[slot] = malloc(n);
        CHECK(keep[slot] != NULL, "thread malloc");
        keep_n[slot] = n;
        fill(keep[slot], n, (unsigned)slot + id);
        if (r % 97 == 0) {
            /* Hand a block to the next thread, free the one handed to us: cross-thread frees. */
            void *mine = malloc(128);
            void *theirs = __atomic_exchange_n(&handoff[(id + 1) % NTHREADS], mine, __ATOMIC_ACQ_REL);
            free(theirs);
        }
    }
    for (int i = 0; i < 64; i++)
        free(keep[i]);
    unsigned char *t = malloc(200);
    fill(t, 200, 4);
    CHECK(__cxa_thread_atexit_impl(tls_destructor, t, &__dso_handle) == 0, "__cxa_thread_atexit_impl");
    pthread_setspecific(late_key, malloc(64));
    return NULL;
}

static void check_threads(void) {
    CHECK(pthread_key_create(&late_key, late_destructor) == 0, "pthread_key_create");
    for (int round = 0; round < 3; round++) {
        pthread_t t[NTHREADS];
        for (uintptr_t i = 0; i < NTHREADS; i++)
            CHECK(pthread_create(&t[i], NULL, worker, (void *)i) == 0, "pthread_create");
        for (int i = 0; i < NTHREADS; i++)
            CHECK(pthread_join(t[i], NULL) == 0, "pthread_join");
    }
    for (int i = 0; i < NTHREADS; i++)
        free(handoff[i]);
    printf("ok threads and thread exit\n");
}

/* ---- fork ---- */

static volatile int stop_churn;

static void *churn(void *arg) {
    (void)arg;
    unsigned seed = 1;
    while (!stop_churn) {
        seed = seed * 1103515245u + 12345u;
        void *p = malloc(seed % 3000);
        free(malloc(seed % 100));
        free(p);
    }
    return NULL;
}

/* Short-lived threads, so CPU slots are handed back at thread exit while forks happen. */
static void *short_lived(void *arg) {
    for (int i = 0; i < 50; i++)
        free(malloc(i * 40 + 1));
    return arg;
}

static void *spawner(void *arg) {
    while (!stop_churn) {
        pthread_t t;
        CHECK(pthread_create(&t, NULL, short_lived, NULL) == 0, "pthread_create");
        CHECK(pthread_join(t, NULL) == 0, "pthread_join");
    }
    return arg;
}

static void *child_thread(void *arg) {
    for (int i = 0; i < 1000; i++)
        free(malloc(i * 7 % 5000 + 1));
    return arg;
}

static void check_fork(void) {
    unsigned char *a = malloc(10000);
    fill(a, 10000, 1);
    pthread_t t[3];
    for (int i = 0; i < 2; i++)
        CHECK(pthread_create(&t[i], NULL, churn, NULL) == 0, "pthread_create");
    CHECK(pthread_create(&t[2], NULL, spawner, NULL) == 0, "pthread_create");
    for (int round = 0; round < 40; round++) {
        pid_t pid = fork();
        CHECK(pid >= 0, "fork");
        if (pid == 0) {
            /* The child: its own copy of the heap, usable with threads of its own. */
            if (!holds(a, 10000, 1))
                _exit(2);
            fill(a, 10000, 99);
            void *many[1000];
            for (int i = 0; i < 1000; i++)
                if (!(many[i] = malloc(i * 13 % 9000 + 1)))
                    _exit(3);
            for (int i = 0; i < 1000; i++)
                free(many[i]);
            pthread_t ct;
            if (pthread_create(&ct, NULL, child_thread, NULL) != 0 || pthread_join(ct, NULL) != 0)
                _exit(4);
            char *big = malloc(8 << 20);
            if (!big)
                _exit(5);
            memset(big, 1, 8 << 20);
            free(big);
            free(a);
            _exit(0);
        }
        int status = 0;
        CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "fork child %d failed: status %#x", round, status);
        CHECK(holds(a, 10000, 1), "the child's writes reached the parent");
    }
    stop_churn = 1;
    for (int i = 0; i < 3; i++)
        CHECK(pthread_join(t[i], NULL) == 0, "pthread_join");
    free(a);
    printf("ok fork\n");
}

/* ---- preload only ---- */

static char not_from_malloc[64];

static void check_kmem_classes(void) {
    /* kmalloc's size classes show through malloc_usable_size. */
    const size_t want[][2] = {{1, 16}, {17, 32}, {65, 96}, {100, 128}, {129, 192}, {1000, 1024},
                              {5000, 8192}, {8193, 16384}, {100000, 131072}, {(4 << 20) - 1, 4 << 20}};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        void *p = malloc(want[i][0]);
        size_t usable = malloc_usable_size(p);
        CHECK(usable == want[i][1], "malloc(%zu) usable %zu, want kmalloc's %zu", want[i][0], usable, want[i][1]);
        free(p);
    }
    /* Pointers the library never handed out are recognised and ignored. */
    void *volatile foreign = not_from_malloc;
    free(foreign);
    int local = 0;
    foreign = &local;
    free(foreign);
    void *m = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(m != MAP_FAILED, "mmap");
    foreign = m;
    free(foreign);
    CHECK(malloc_usable_size(m) == 0, "usable size of a foreign pointer");
    errno = 0;
    CHECK(realloc(m, 100) == NULL && errno == ENOMEM, "realloc of a foreign pointer");
    munmap(m, PAGE);
    printf("ok kmalloc classes and foreign pointers\n");
}

int main(int argc, char **argv) {
    preload = argc > 1 && strcmp(argv[1], "--preload") == 0;
    setvbuf(stdout, NULL, _IONBF, 0);
    check_malloc();
    check_calloc();
    check_realloc();
    check_reallocarray();
    check_posix_memalign();
    check_aligned_forms();
    if (preload || (argc > 1 && strcmp(argv[1], "--c17") == 0))
        check_aligned_alloc_einval();
    check_threads();
    check_fork();
    if (preload)
        check_kmem_classes();
    printf("all ok\n");
    return 0;
}
