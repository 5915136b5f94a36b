/* A system call probe for tests/container.rs: each argument is
 * ABI:NR[:A0[:A1[:A2[:A3]]]] (ABI 64 for the native x86_64 calls, 32 for
 * the i386 ones through int 0x80); each call runs in a child of its own,
 * and a line "ARG ERRNO" (0 for success) is printed for it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static long i386_call(long nr, long a, long b, long c) {
    long r;
    __asm__ volatile("int $0x80" : "=a"(r) : "a"(nr), "b"(a), "c"(b), "d"(c) : "memory");
    return r;
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        int abi = 0;
        long nr = 0, a[4] = {0};
        sscanf(argv[i], "%d:%li:%li:%li:%li:%li", &abi, &nr, &a[0], &a[1], &a[2], &a[3]);
        int p[2];
        if (pipe(p) != 0) return 2;
        pid_t pid = fork();
        if (pid == 0) {
            int e = 0;
            if (abi == 32) {
                long r = i386_call(nr, a[0], a[1], a[2]);
                if (r < 0 && r > -4096) e = (int)-r;
            } else if (syscall(nr, a[0], a[1], a[2], a[3]) < 0) {
                e = errno;
            }
            if (write(p[1], &e, sizeof e) != sizeof e) _exit(2);
            _exit(0);
        }
        int e = -1;
        close(p[1]);
        if (read(p[0], &e, sizeof e) != sizeof e) e = -1;
        close(p[0]);
        waitpid(pid, NULL, 0);
        printf("%s %d\n", argv[i], e);
    }
    return 0;
}
