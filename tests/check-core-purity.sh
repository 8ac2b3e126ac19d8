#!/bin/sh
# check-core-purity.sh - fails if a Raft core file does I/O or uses time, randomness, threads,
# libevent, fuse or sockets itself (STYLE.md 1: those reach the core through struct raft_env).
status=0
for f in "$@"; do
	[ -f "$f" ] || continue
	# includes that would let the core touch the outside world (<stdio.h> is allowed for
	# vsnprintf; every stdio call that does I/O is caught below)
	bad=$(grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"](event2?/|event\.h|fuse|sys/socket|netinet/|arpa/|netdb|unistd|fcntl|pthread|time\.h|sys/time|sys/stat|sys/mman|tpl\.h|threads\.h|signal\.h|dirent)' "$f")
	if [ -n "$bad" ]; then
		echo "$f: forbidden include in the Raft core:"
		echo "$bad"
		status=1
	fi
	# calls (not struct members such as env.random): strip comments and string literals (keeping line numbers), then look for forbidden calls
	calls=$(perl -0777 -pe 's{/\*(.*?)\*/}{"\n" x ($1 =~ tr/\n//)}gse; s{//[^\n]*}{}g; s{"(\\.|[^"\\\n])*"}{""}g' "$f" |
		grep -nE '(^|[^_[:alnum:].>])(time|clock_gettime|gettimeofday|rand|random|srand|srandom|rand_r|drand48|getrandom|open|openat|read|write|pread|pwrite|fopen|fread|fwrite|fprintf|printf|puts|fputs|fputc|putchar|getchar|fgets|fflush|fclose|perror|fsync|fdatasync|socket|connect|send|recv|sendto|recvfrom|sleep|usleep|nanosleep|pthread_create|event_base_new|abort|exit)[[:space:]]*\(')
	if [ -n "$calls" ]; then
		echo "$f: forbidden call in the Raft core:"
		echo "$calls"
		status=1
	fi
done
if [ "$status" -eq 0 ]; then
	echo "core purity: ok ($# files)"
fi
exit $status
