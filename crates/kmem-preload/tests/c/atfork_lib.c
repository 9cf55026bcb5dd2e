/* A library that, like many, registers fork handlers from its constructor: before the preload
 * has seen its first malloc, so before the preload's own handlers. Its handlers allocate. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static char *saved;

static void prepare(void) { saved = malloc(100); if (saved) memset(saved, 'p', 100); }
static void parent(void) { free(saved); saved = malloc(200); free(saved); }
static void child(void) { free(saved); saved = malloc(300); free(saved); }

__attribute__((constructor)) static void init(void) { pthread_atfork(prepare, parent, child); }
