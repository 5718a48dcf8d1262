/*
 * The loopback echo benchmark's libuv server (benches/echo.py drives it): the classic
 * libuv TCP echo, one event loop on one thread, on 127.0.0.1 with a port the kernel
 * picks (printed). Debian's libuv1-dev.
 */
#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

typedef struct {
  uv_write_t req;
  uv_buf_t buf;
} write_req_t;

static void on_close(uv_handle_t *h) { free(h); }

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)h;
  (void)suggested;
  buf->base = malloc(16384);
  buf->len = buf->base ? 16384 : 0;
}

static void on_written(uv_write_t *req, int status) {
  (void)status;
  write_req_t *w = (write_req_t *)req;
  free(w->buf.base);
  free(w);
}

static void on_read(uv_stream_t *client, ssize_t n, const uv_buf_t *buf) {
  if (n > 0) {
    write_req_t *w = malloc(sizeof *w);
    w->buf = uv_buf_init(buf->base, (unsigned)n);
    if (uv_write(&w->req, client, &w->buf, 1, on_written) == 0) return;
    free(w);
  }
  free(buf->base);
  if (n < 0) uv_close((uv_handle_t *)client, on_close);
}

static void on_connection(uv_stream_t *server, int status) {
  if (status < 0) return;
  uv_tcp_t *client = malloc(sizeof *client);
  uv_tcp_init(server->loop, client);
  if (uv_accept(server, (uv_stream_t *)client) == 0) {
    uv_tcp_nodelay(client, 1);
    uv_read_start((uv_stream_t *)client, on_alloc, on_read);
  } else {
    uv_close((uv_handle_t *)client, on_close);
  }
}

int main(void) {
  uv_loop_t *loop = uv_default_loop();
  uv_tcp_t server;
  struct sockaddr_in addr;
  uv_tcp_init(loop, &server);
  uv_ip4_addr("127.0.0.1", 0, &addr);
  int rc = uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0);
  if (rc == 0) rc = uv_listen((uv_stream_t *)&server, 4096, on_connection);
  if (rc != 0) {
    fprintf(stderr, "listen: %s\n", uv_strerror(rc));
    return 1;
  }
  int len = sizeof addr;
  uv_tcp_getsockname(&server, (struct sockaddr *)&addr, &len);
  printf("echo server (libuv %s): listening on 127.0.0.1:%d\n", uv_version_string(), ntohs(addr.sin_port));
  fflush(stdout);
  return uv_run(loop, UV_RUN_DEFAULT);
}
