/* fork() with another library's fork handlers that allocate, registered before the preload's:
 * they run while the preload's gate is closed (between its prepare and its parent/child
 * handlers), on the forking thread, and must not wait for that gate. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void)
{
	for (int i = 0; i < 3; i++) {
		void *p = malloc(64);
		pid_t pid = fork();
		if (pid == 0) {
			void *q = malloc(128);
			free(q);
			free(p);
			_exit(0);
		}
		int status = -1;
		if (pid < 0 || waitpid(pid, &status, 0) != pid || status != 0) {
			printf("fork %d failed (status %d)\n", i, status);
			return 1;
		}
		free(p);
	}
	printf("forks ok\n");
	return 0;
}
