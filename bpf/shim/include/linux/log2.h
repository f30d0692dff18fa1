/* flowviz shim: included by bcc's headers; nothing in it is used. */
