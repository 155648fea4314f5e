/* The multi-rank GPU tests as one program (each program of the GPU bundle carries the
 * kernels' fatbins, about 5 MB compressed, so two would cost twice that):
 *   test_nccl comm              the collectives (test_nccl_comm.c)
 *   test_nccl zero              ZeRO 0-3 against one rank (test_nccl_zero.c)
 *   test_nccl kill | probe      its killed-rank mode, and whether that can run here
 *   test_nccl bf16              NCCL's native bf16 sums against f32 accumulation (2+ GPUs)
 *   test_nccl timeout           the last rank never joins collective #3: the others report it
 *   test_nccl timeout_free      the same, the others free device memory after #3's wait (NCCL)
 *   test_nccl watchdog_hang | watchdog_async | watchdog_read | watchdog_free | watchdog_two |
 *             watchdog_scratch | watchdog_upload | watchdog_probe
 *                               the watchdog against the emulator's NCCL stub (test_nccl_watchdog.c)
 * Exit 0 passed, 1 failed, 77 skipped (the reason printed), 2 usage. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

int nccl_comm_main(void);
int nccl_zero_main(int argc, char **argv);
int nccl_comm_timeout_main(bool free_instead);
int nccl_watchdog_main(const char *mode);

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "comm") == 0) return nccl_comm_main();
    if (argc > 1 && strcmp(argv[1], "timeout") == 0) return nccl_comm_timeout_main(false);
    if (argc > 1 && strcmp(argv[1], "timeout_free") == 0) return nccl_comm_timeout_main(true);
    if (argc > 1 && strcmp(argv[1], "zero") == 0) return nccl_zero_main(1, argv);
    if (argc > 1 && strncmp(argv[1], "watchdog_", 9) == 0) return nccl_watchdog_main(argv[1]);
    if (argc > 1 && (!strcmp(argv[1], "kill") || !strcmp(argv[1], "probe") || !strcmp(argv[1], "bf16")))
        return nccl_zero_main(2, argv);
    fprintf(stderr, "usage: test_nccl comm|zero|kill|probe|bf16|timeout|timeout_free|watchdog_hang|watchdog_async|watchdog_read|watchdog_free|watchdog_two|watchdog_scratch|watchdog_upload|watchdog_probe\n");
    return 2;
}
