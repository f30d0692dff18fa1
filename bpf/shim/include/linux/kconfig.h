/* flowviz shim: bcc force-includes ./include/linux/kconfig.h and its
 * helpers.h insists on CONFIG_BPF_SYSCALL. flowviz only runs where BPF works
 * (flowviz doctor checks), so the answers are fixed. */
#define CONFIG_BPF_SYSCALL 1
#define CONFIG_BPF_EVENTS 1
