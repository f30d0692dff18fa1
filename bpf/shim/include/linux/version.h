/* flowviz shim: bcc's helpers.h uses KERNEL_VERSION; LINUX_VERSION_CODE comes
 * from the running kernel as -DFV_LINUX_VERSION_CODE (tracepoint programs do
 * not need it to match; kprobes on old kernels did). */
#define KERNEL_VERSION(a, b, c) (((a) << 16) + ((b) << 8) + ((c) > 255 ? 255 : (c)))
#ifdef FV_LINUX_VERSION_CODE
#define LINUX_VERSION_CODE FV_LINUX_VERSION_CODE
#else
#define LINUX_VERSION_CODE KERNEL_VERSION(5, 8, 0)
#endif
