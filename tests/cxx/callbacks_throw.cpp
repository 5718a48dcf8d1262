// A C++ host whose callbacks throw: weft.h says callbacks must return normally, and
// weft makes the breach behave the same on every plugin: the process aborts at once
// with a message naming the callback, instead of unwinding through weft's frames.
//
//   callbacks_throw SCENARIO   runs SCENARIO in a child process and checks that the
//                              child died of SIGABRT with weft's message on stderr
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#include <sys/wait.h>
#include <unistd.h>

#include "weft.h"

namespace {

[[noreturn]] void boom() { throw std::runtime_error("thrown by a weft callback"); }

int32_t throwing_task(void *, void **) { boom(); }
int32_t quiet_task(void *, void **) { return 0; }
void throwing_hook(weft_task_t *, void *) { boom(); }
void throwing_dtor(void *) { boom(); }
void throwing_drop(void *, void *) { boom(); }
bool throwing_visit(const weft_task_info_t *, void *) { boom(); }

weft_runtime_t *open(weft_config_t *cfg) {
  weft_runtime_t *rt = nullptr;
  if (weft_runtime_open(cfg, &rt) != WEFT_OK) {
    std::fprintf(stderr, "weft_runtime_open: %s\n", weft_last_error());
    std::exit(3);
  }
  return rt;
}

void spawn_join(weft_runtime_t *rt, weft_task_fn fn) {
  weft_task_t *t = nullptr;
  if (weft_spawn(rt, fn, nullptr, nullptr, &t) != WEFT_OK) std::exit(3);
  weft_join(t, WEFT_FOREVER, nullptr, nullptr);
}

int32_t set_slot(void *arg, void **) {
  weft_local_set(*static_cast<weft_key_t *>(arg), reinterpret_cast<void *>(1));
  return 0;
}

// Runs one scenario; returns only if weft let the call complete (a failure).
void run(const std::string &scenario) {
  weft_config_t cfg;
  weft_config_init(&cfg);
  if (scenario == "task") {
    spawn_join(open(&cfg), throwing_task);
  } else if (scenario == "on_task_start" || scenario == "on_task_exit") {
    (scenario == "on_task_start" ? cfg.on_task_start : cfg.on_task_exit) = throwing_hook;
    spawn_join(open(&cfg), quiet_task);
  } else if (scenario == "key_dtor") {
    weft_runtime_t *rt = open(&cfg);
    weft_key_t key;
    if (weft_key_create(rt, throwing_dtor, &key) != WEFT_OK) std::exit(3);
    weft_task_t *t = nullptr;
    if (weft_spawn(rt, set_slot, &key, nullptr, &t) != WEFT_OK) std::exit(3);
    weft_join(t, WEFT_FOREVER, nullptr, nullptr);
  } else if (scenario == "elem_drop") {
    weft_runtime_t *rt = open(&cfg);
    weft_chan_opts_t opts;
    weft_chan_opts_init(&opts);
    opts.elem_drop = throwing_drop;
    weft_chan_t *ch = nullptr;
    if (weft_chan_new(rt, sizeof(int), 4, &opts, &ch) != WEFT_OK) std::exit(3);
    int one = 1;
    weft_chan_send(ch, &one, WEFT_FOREVER);
    weft_chan_release(ch);
  } else if (scenario == "blob_dtor") {
    open(&cfg);
    static char bytes[4];
    weft_blob_t *blob = nullptr;
    if (weft_blob_wrap(bytes, sizeof bytes, throwing_drop, nullptr, &blob) != WEFT_OK) std::exit(3);
    weft_blob_release(blob);
  } else if (scenario == "visitor") {
    weft_runtime_t *rt = open(&cfg);
    weft_thread_attach(rt);
    weft_tasks_foreach(rt, throwing_visit, nullptr);
  } else {
    std::fprintf(stderr, "unknown scenario %s\n", scenario.c_str());
    std::exit(2);
  }
}

}  // namespace

int main(int argc, char **argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: callbacks_throw SCENARIO EXPECTED-MESSAGE-PART\n");
    return 2;
  }
  int pipe_fds[2];
  if (pipe(pipe_fds) != 0) return 3;
  pid_t child = fork();
  if (child < 0) return 3;
  if (child == 0) {
    dup2(pipe_fds[1], 2);
    close(pipe_fds[0]);
    try {
      run(argv[1]);
    } catch (const std::exception &e) {
      std::fprintf(stderr, "the exception came through weft to the host: %s\n", e.what());
      std::_Exit(10);
    }
    std::fprintf(stderr, "the call returned\n");
    std::_Exit(11);
  }
  close(pipe_fds[1]);
  std::string err;
  char buf[512];
  ssize_t n;
  while ((n = read(pipe_fds[0], buf, sizeof buf)) > 0) err.append(buf, static_cast<size_t>(n));
  int status = 0;
  if (waitpid(child, &status, 0) != child) return 3;
  std::string expected = std::string("weft: ") + argv[2] + " let a C++ exception";
  bool aborted = WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
  if (!aborted || err.find(expected) == std::string::npos) {
    std::fprintf(stderr, "%s: expected SIGABRT and \"%s\"; got %s %d, stderr:\n%s\n", argv[1], expected.c_str(),
                 WIFSIGNALED(status) ? "signal" : "exit", WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status),
                 err.c_str());
    return 1;
  }
  std::printf("%s: aborted with \"%s\"\n", argv[1], expected.c_str());
  return 0;
}
