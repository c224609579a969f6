/** The release version of passt/pasta: the one place it is set (the Makefile reads it too). */
export const VERSION = "0.1.0";
