/* transport_internal.h - the transport's door below its listener, for raft/ and its tests. */
#ifndef RAFT_TRANSPORT_INTERNAL_H
#define RAFT_TRANSPORT_INTERNAL_H

#include <event2/util.h>
#include <sys/socket.h>

#include "raft/transport.h"

/*
 * A connection accepted on t's listening socket: fd (a connected stream socket, which t owns
 * from now on and closes) from the peer address sa. The listener calls this for every accepted
 * connection; the fuzz target (tests/fuzz/fuzz_transport.c) hands it one end of a socketpair,
 * so that its bytes take the very path a remote node's or client's take, from the hello on.
 */
void raft_transport_accepted(struct raft_transport *t, evutil_socket_t fd,
                             const struct sockaddr *sa, int socklen);

#endif /* RAFT_TRANSPORT_INTERNAL_H */
