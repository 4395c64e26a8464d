/* C reference for `npm run bench -- recvfrom`: the cost of a nonblocking recvfrom
   on an empty UDP socket, in the host kernel, called from C. Prints ns per call. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 1000000;
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0) return 1;
  char buf[2048];
  struct sockaddr_in from;
  socklen_t len;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  long again = 0;
  for (long i = 0; i < n; i++) {
    len = sizeof from;
    if (recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &len) < 0 && errno == EAGAIN) again++;
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  close(fd);
  double ns = (t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec);
  printf("%.1f %ld\n", ns / n, again);
  return again == n ? 0 : 2;
}
