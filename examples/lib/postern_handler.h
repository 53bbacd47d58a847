/* SPDX-License-Identifier: MIT */
/* A small library for handler programs run by postern (libc only). */
#ifndef POSTERN_HANDLER_H
#define POSTERN_HANDLER_H

#include <stddef.h>

/* The client socket: fd 3 when started systemd-style (LISTEN_FDS=1 and
 * LISTEN_PID matching), else fd 0 (inetd style; write to fd 1). */
int pst_handler_socket(void);

/* "ADDR:PORT" of the client from REMOTE_ADDR/REMOTE_PORT (or the ucspi-tcp
 * TCPREMOTEIP/TCPREMOTEPORT), or "" when there is none. */
const char *pst_handler_peer(char *buf, size_t len);

/* The fd of channel NAME from POSTERN_SEND_<NAME> (upper-cased, '-' -> '_'),
 * or -1 if this handler may not send to it. */
int pst_handler_send_fd(const char *channel);

/* One message on a pipe channel: a line without '\n', at most 4095 bytes,
 * written atomically. 0 or -1 with errno. */
int pst_send_message(int fd, const char *line);

/* Pass / receive one fd over an fdpass channel (SCM_RIGHTS). */
int pst_send_fd(int chan, int fd);
int pst_recv_fd(int chan);

#endif
