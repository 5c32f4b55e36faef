// Keeps test firmware on loopback: ESPHome's API server binds the wildcard address and has no
// option for it, so this definition interposes libc's bind() for the whole executable (a symbol
// defined in the program wins over the shared libc one) and rewrites 0.0.0.0 / :: to 127.0.0.1 / ::1.
#pragma once

#include <cstring>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

extern "C" int bind(int fd, const struct sockaddr *addr, socklen_t len) noexcept {
  if (addr != nullptr && addr->sa_family == AF_INET && len >= sizeof(sockaddr_in)) {
    sockaddr_in v4;
    std::memcpy(&v4, addr, sizeof(v4));
    if (v4.sin_addr.s_addr == htonl(INADDR_ANY)) {
      v4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      return static_cast<int>(syscall(SYS_bind, fd, &v4, sizeof(v4)));
    }
  } else if (addr != nullptr && addr->sa_family == AF_INET6 && len >= sizeof(sockaddr_in6)) {
    sockaddr_in6 v6;
    std::memcpy(&v6, addr, sizeof(v6));
    if (IN6_IS_ADDR_UNSPECIFIED(&v6.sin6_addr)) {
      v6.sin6_addr = in6addr_loopback;
      return static_cast<int>(syscall(SYS_bind, fd, &v6, sizeof(v6)));
    }
  }
  return static_cast<int>(syscall(SYS_bind, fd, addr, len));
}
