/* flowviz shim: bcc's helpers.h wants PAGE_SIZE. */
#ifndef PAGE_SIZE
#define PAGE_SIZE 4096
#endif
