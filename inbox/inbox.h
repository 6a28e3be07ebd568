/* `scalr-email inbox`: the local development mail catcher. */
#ifndef IB_INBOX_H
#define IB_INBOX_H

/* argv[0] is "inbox".  Returns a sysexits status. */
int inbox_main(int argc, char **argv);

#endif
