/*
 * Channels and select, after Go's runtime (hchan and sudog).
 *
 * A channel is a pthread mutex guarding a ring of elem_size-byte slots and two FIFO
 * queues of waiting calls: senders (waiting for room or a receiver) and receivers
 * (waiting for an element or a sender).
 *
 * A call that must wait (a send, a receive, or a select with one entry per case) keeps
 * a call_t and its entries on its own stack and queues the entries on their channels.
 * The call's state (WAITING, then DONE or GAVE_UP) is read and written only under the
 * lock of the wait queue of the call's address (wait.c), the very lock the call waits
 * with. So exactly one of two things happens:
 *   - a partner (a sender, a receiver or chan_close, holding the channel's lock) pops
 *     an entry, locks its call's wait queue, finds the call WAITING and completes it
 *     before unlocking: copies the element straight into the waiting receiver's buffer
 *     or out of the waiting sender's, sets DONE (which case, closed or not), broadcasts;
 *   - or the call, woken by its deadline or by cancel(), finds itself still WAITING
 *     under that lock and gives up (GAVE_UP): nobody will complete it any more.
 * An element handed over is never lost, and at most one case of a select completes.
 * Partners drop the entries of calls that are no longer WAITING as they meet them.
 *
 * Entries stay valid while they are queued: a call takes its queued entries back out,
 * under the channel locks, before it returns (an entry its partner popped is no longer
 * queued). The wait queues are never freed, so a partner may broadcast after the
 * waiting call has returned.
 *
 * Lock order: channel locks (a select takes its channels in address order, each once),
 * then one wait queue's lock. A waiting call holds no channel lock, and calls
 * host->blocking_enter/leave with no lock held: leaving may park it while the world is
 * stopped, and whoever runs meanwhile may use the same channels.
 */
#include "plugin.h" /* first: it selects the POSIX and GNU interfaces */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- waiting calls -------------------------------------------------------------------- */

enum { WAITING, DONE, GAVE_UP };

/* One waiting call: the decision all its entries share. */
typedef struct call {
  int state;    /* WAITING, DONE or GAVE_UP; under waitq_for(call)->lock */
  size_t index; /* DONE: the index of the case that completed (0 for a send/receive) */
  int closed;   /* DONE: completed by chan_close (WEFT_ECLOSED, nothing copied) */
} call_t;

typedef struct queue queue_t;

/* One case of a waiting call, queued on its channel. */
typedef struct entry {
  call_t *call;
  void *buf;    /* send: the element to take; receive: where to put one */
  size_t index; /* the case's index in its call */
  queue_t *in;  /* the queue holding it, NULL once popped or taken out */
  struct entry *prev, *next;
} entry_t;

struct queue {
  entry_t *head, *tail;
};

static void enqueue(queue_t *q, entry_t *e) {
  e->in = q;
  e->next = NULL;
  e->prev = q->tail;
  if (q->tail != NULL) q->tail->next = e;
  else q->head = e;
  q->tail = e;
}

/* Takes `e` out of the queue holding it, if any. */
static void dequeue(entry_t *e) {
  queue_t *q = e->in;
  if (q == NULL) return;
  if (e->prev != NULL) e->prev->next = e->next;
  else q->head = e->next;
  if (e->next != NULL) e->next->prev = e->prev;
  else q->tail = e->prev;
  e->in = NULL;
}

/* Pops the first entry of `q` whose call still waits and returns it with that call's
 * wait queue locked (in *locked), so that the call cannot give up: the caller copies
 * the element, then calls finish(). Entries of calls that have completed elsewhere or
 * given up are dropped on the way. NULL when no call waits. Channel lock held. */
static entry_t *claim_first(queue_t *q, waitq_t **locked) {
  entry_t *e;
  while ((e = q->head) != NULL) {
    dequeue(e);
    waitq_t *wq = waitq_for(e->call);
    pthread_mutex_lock(&wq->lock);
    if (e->call->state == WAITING) {
      *locked = wq;
      return e;
    }
    pthread_mutex_unlock(&wq->lock);
  }
  return NULL;
}

/* Completes the call of an entry claimed with claim_first and wakes it. The call may
 * return as soon as the lock is released: neither it nor `e` is touched afterwards. */
static void finish(entry_t *e, waitq_t *locked, int closed) {
  e->call->index = e->index;
  e->call->closed = closed;
  e->call->state = DONE;
  pthread_cond_broadcast(&locked->cond);
  pthread_mutex_unlock(&locked->lock);
}

/* Why a call that cannot complete at once does not wait: a pending cancellation, else
 * a deadline already past; WEFT_OK if it may wait. */
static weft_status_t may_wait(int64_t deadline) {
  if (host->cancel_pending()) return WEFT_ECANCELED;
  if (pt_expired(deadline)) return WEFT_ETIMEDOUT;
  return WEFT_OK;
}

/* Waits, in a blocking region and with no channel lock held, until a partner completes
 * `call` (WEFT_OK: see call->index and call->closed), the deadline passes
 * (WEFT_ETIMEDOUT) or the task is cancelled (WEFT_ECANCELED). On the last two the call
 * has given up: nothing was taken or delivered, and nobody will complete it. */
static weft_status_t await(call_t *call, int64_t deadline) {
  waitq_t *q = waitq_for(call);
  weft_status_t st = WEFT_OK;
  host->blocking_enter();
  wait_begin(q);
  while (call->state == WAITING && (st = wait_once(q, deadline)) == WEFT_OK) {
  }
  /* wait_once returns an error without releasing q: the call is still WAITING. */
  if (st != WEFT_OK) call->state = GAVE_UP;
  wait_end(q);
  host->blocking_leave();
  return st;
}

/* --- channels ------------------------------------------------------------------------- */

struct weft_plat_chan_t {
  pthread_mutex_t lock; /* guards everything below */
  size_t elem_size;
  size_t capacity;      /* 0 = rendezvous, WEFT_CHAN_UNBOUNDED, or the bound */
  unsigned char *slots; /* the ring: `room` slots of elem_size bytes (none if elem_size is 0) */
  size_t room;
  size_t head;          /* the slot of the oldest element */
  size_t len;           /* elements buffered */
  int closed;
  queue_t senders, receivers;
};

/* What the try_ functions return when the operation would have to wait (weft's own
 * statuses are 0 and up). */
#define NOT_READY (-1)

static void copy(void *to, const void *from, size_t n) {
  if (n != 0) memcpy(to, from, n); /* 0-byte elements may come with NULL buffers */
}

/* The i-th oldest buffered element. A 0-byte element has no slot: any non-NULL
 * pointer will do, nobody reads it. */
static unsigned char *slot(weft_plat_chan_t *ch, size_t i) {
  static unsigned char no_bytes;
  if (ch->elem_size == 0) return &no_bytes;
  return ch->slots + (ch->head + i) % ch->room * ch->elem_size;
}

/* Doubles the ring of an unbounded channel, keeping its elements in order; 0 when the
 * memory cannot be had. */
static int grow(weft_plat_chan_t *ch) {
  size_t room = ch->room == 0 ? 16 : ch->room * 2;
  if (room < ch->room || room > SIZE_MAX / ch->elem_size) return 0;
  unsigned char *slots = malloc(room * ch->elem_size);
  if (slots == NULL) return 0;
  for (size_t i = 0; i < ch->len; i++) copy(slots + i * ch->elem_size, slot(ch, i), ch->elem_size);
  free(ch->slots);
  ch->slots = slots;
  ch->room = room;
  ch->head = 0;
  return 1;
}

/* Appends a copy of the element at `src`; 0 when an unbounded ring cannot grow. The
 * caller has checked that the channel's capacity allows one more. */
static int push(weft_plat_chan_t *ch, const void *src) {
  if (ch->elem_size != 0 && ch->len == ch->room && !grow(ch)) return 0;
  copy(slot(ch, ch->len), src, ch->elem_size);
  ch->len++;
  return 1;
}

/* Moves the oldest element to `dst`. The ring is not empty. */
static void pop(weft_plat_chan_t *ch, void *dst) {
  copy(dst, slot(ch, 0), ch->elem_size);
  if (ch->elem_size != 0) ch->head = (ch->head + 1) % ch->room;
  ch->len--;
}

/* A send that does not wait: WEFT_OK, WEFT_ECLOSED, WEFT_ENOMEM or NOT_READY. Channel
 * lock held. */
static int try_send(weft_plat_chan_t *ch, const void *src) {
  if (ch->closed) return WEFT_ECLOSED;
  waitq_t *locked;
  entry_t *receiver = claim_first(&ch->receivers, &locked);
  if (receiver != NULL) { /* a receiver waits only when nothing is buffered */
    copy(receiver->buf, src, ch->elem_size);
    finish(receiver, locked, 0);
    return WEFT_OK;
  }
  if (ch->len < ch->capacity) return push(ch, src) ? WEFT_OK : WEFT_ENOMEM;
  return NOT_READY;
}

/* A receive that does not wait: WEFT_OK, WEFT_ECLOSED or NOT_READY. Channel lock held. */
static int try_recv(weft_plat_chan_t *ch, void *dst) {
  waitq_t *locked;
  entry_t *sender = claim_first(&ch->senders, &locked);
  if (sender != NULL) {
    if (ch->len > 0) {
      /* A sender waits on a full buffer: take its head, and the sender's element goes
       * to the tail (into the slot just freed: the push cannot fail). */
      pop(ch, dst);
      push(ch, sender->buf);
    } else { /* rendezvous */
      copy(dst, sender->buf, ch->elem_size);
    }
    finish(sender, locked, 0);
    return WEFT_OK;
  }
  if (ch->len > 0) {
    pop(ch, dst);
    return WEFT_OK;
  }
  return ch->closed ? WEFT_ECLOSED : NOT_READY;
}

static weft_status_t no_room(void) {
  host->set_error_detail("an unbounded channel could not grow its buffer");
  return WEFT_ENOMEM;
}

weft_status_t pt_chan_new(weft_plat_rt_t *rt, size_t elem_size, size_t capacity, weft_plat_chan_t **out) {
  (void)rt; /* a channel must outlive the runtime state: it keeps nothing of it */
  weft_plat_chan_t *ch = calloc(1, sizeof *ch);
  if (ch == NULL) return pt_fail("cannot allocate a channel", ENOMEM);
  ch->elem_size = elem_size;
  ch->capacity = capacity;
  /* A bounded ring is allocated once, at its full size; an unbounded one grows from a
   * first ring allocated now, so that a size no allocation can serve is refused here,
   * as on the other platforms, and not at the first send. */
  if (capacity == WEFT_CHAN_UNBOUNDED && elem_size != 0 && !grow(ch)) {
    char detail[120];
    snprintf(detail, sizeof detail, "cannot allocate the first ring of an unbounded channel of %zu-byte elements",
             elem_size);
    host->set_error_detail(detail);
    free(ch);
    return WEFT_ENOMEM;
  }
  if (capacity != WEFT_CHAN_UNBOUNDED && capacity != 0 && elem_size != 0) {
    if (capacity <= SIZE_MAX / elem_size) ch->slots = malloc(capacity * elem_size);
    if (ch->slots == NULL) {
      char detail[120];
      snprintf(detail, sizeof detail, "cannot allocate %zu slots of %zu bytes", capacity, elem_size);
      host->set_error_detail(detail);
      free(ch);
      return WEFT_ENOMEM;
    }
    ch->room = capacity;
  }
  int rc = pthread_mutex_init(&ch->lock, NULL);
  if (rc != 0) {
    free(ch->slots);
    free(ch);
    return pt_fail("pthread_mutex_init", rc);
  }
  *out = ch;
  return WEFT_OK;
}

/* A send (send = 1, buf the element) or a receive (buf the destination): try, else
 * queue one entry and wait for a partner. */
static weft_status_t send_or_recv(weft_plat_chan_t *ch, void *buf, int64_t deadline, int send) {
  pthread_mutex_lock(&ch->lock);
  int tried = send ? try_send(ch, buf) : try_recv(ch, buf);
  weft_status_t st = tried == NOT_READY ? may_wait(deadline) : tried;
  if (tried != NOT_READY || st != WEFT_OK) {
    pthread_mutex_unlock(&ch->lock);
    return st == WEFT_ENOMEM ? no_room() : st;
  }
  call_t call = {.state = WAITING};
  entry_t entry = {.call = &call, .buf = buf, .index = 0};
  enqueue(send ? &ch->senders : &ch->receivers, &entry);
  pthread_mutex_unlock(&ch->lock);

  st = await(&call, deadline);
  if (st != WEFT_OK) { /* gave up: take the entry back, unless a partner dropped it */
    pthread_mutex_lock(&ch->lock);
    dequeue(&entry);
    pthread_mutex_unlock(&ch->lock);
    return st;
  }
  return call.closed ? WEFT_ECLOSED : WEFT_OK; /* the partner popped the entry */
}

weft_status_t pt_chan_send(weft_plat_chan_t *ch, const void *elem, int64_t deadline) {
  return send_or_recv(ch, (void *)elem, deadline, 1); /* a sender's buffer is only read */
}

weft_status_t pt_chan_recv(weft_plat_chan_t *ch, void *out, int64_t deadline) {
  return send_or_recv(ch, out, deadline, 0);
}

weft_status_t pt_chan_close(weft_plat_chan_t *ch) {
  waitq_t *locked;
  entry_t *e;
  pthread_mutex_lock(&ch->lock);
  ch->closed = 1;
  /* Waiting senders keep their elements; waiting receivers find nothing buffered. */
  while ((e = claim_first(&ch->senders, &locked)) != NULL) finish(e, locked, 1);
  while ((e = claim_first(&ch->receivers, &locked)) != NULL) finish(e, locked, 1);
  pthread_mutex_unlock(&ch->lock);
  return WEFT_OK;
}

size_t pt_chan_len(weft_plat_chan_t *ch) {
  pthread_mutex_lock(&ch->lock);
  size_t len = ch->len;
  pthread_mutex_unlock(&ch->lock);
  return len;
}

void pt_chan_free(weft_plat_chan_t *ch, weft_plat_elem_drop_fn drop, void *ud) {
  if (drop != NULL)
    for (size_t i = 0; i < ch->len; i++) drop(slot(ch, i), ud); /* oldest first */
  pthread_mutex_destroy(&ch->lock);
  free(ch->slots);
  free(ch);
}

/* --- select ----------------------------------------------------------------------------- */

/* A uniformly distributed number below `bound` (xorshift64*, seeded per thread). The
 * modulo's bias, below bound / 2^64, does not matter here. */
static size_t random_below(size_t bound) {
  static _Thread_local uint64_t x;
  if (x == 0) x = ((uint64_t)pt_clock() ^ (uint64_t)(uintptr_t)&x << 16) | 1;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  return (size_t)(x * UINT64_C(0x2545F4914F6CDD1D) % bound);
}

static int by_address(const void *a, const void *b) {
  uintptr_t x = (uintptr_t) * (weft_plat_chan_t *const *)a, y = (uintptr_t) * (weft_plat_chan_t *const *)b;
  return (x > y) - (x < y);
}

static void lock_all(weft_plat_chan_t **chans, size_t n) {
  for (size_t i = 0; i < n; i++) pthread_mutex_lock(&chans[i]->lock);
}

static void unlock_all(weft_plat_chan_t **chans, size_t n) {
  for (size_t i = n; i > 0; i--) pthread_mutex_unlock(&chans[i - 1]->lock);
}

/* Polls the cases in `order` with every channel locked; the first ready one completes. */
static int poll_cases(const weft_plat_select_case_t *cases, const size_t *order, size_t n, size_t *chosen) {
  for (size_t k = 0; k < n; k++) {
    const weft_plat_select_case_t *c = &cases[order[k]];
    int tried = c->op == WEFT_SELECT_SEND ? try_send(c->chan, c->buf) : try_recv(c->chan, c->buf);
    if (tried != NOT_READY) {
      *chosen = order[k];
      return tried;
    }
  }
  return NOT_READY;
}

weft_status_t pt_chan_select(const weft_plat_select_case_t *cases, size_t n, int64_t deadline, uint32_t flags,
                             size_t *chosen) {
  /* Per case: its place in the poll order, its channel (to lock), its entry. */
  if (n > SIZE_MAX / sizeof(entry_t)) return pt_fail("too many select cases", ENOMEM);
  size_t *order = malloc(n * sizeof *order);
  weft_plat_chan_t **chans = malloc(n * sizeof *chans);
  entry_t *entries = malloc(n * sizeof *entries);
  weft_status_t st;
  if (order == NULL || chans == NULL || entries == NULL) {
    st = pt_fail("cannot allocate a select's cases", ENOMEM);
    goto out;
  }

  /* Poll order: the array's, or a uniformly random permutation, whose first ready case
   * is uniform among the ready ones. */
  for (size_t i = 0; i < n; i++) order[i] = i;
  if (!(flags & WEFT_SELECT_ORDERED)) {
    for (size_t i = n; i > 1; i--) {
      size_t j = random_below(i), t = order[i - 1];
      order[i - 1] = order[j];
      order[j] = t;
    }
  }
  /* Lock order: each channel once, by address. */
  for (size_t i = 0; i < n; i++) chans[i] = cases[i].chan;
  qsort(chans, n, sizeof *chans, by_address);
  size_t locks = 0;
  for (size_t i = 0; i < n; i++)
    if (locks == 0 || chans[locks - 1] != chans[i]) chans[locks++] = chans[i];

  lock_all(chans, locks);
  size_t ready = 0;
  int tried = poll_cases(cases, order, n, &ready);
  st = tried == NOT_READY ? may_wait(deadline) : tried;
  if (tried != NOT_READY || st != WEFT_OK) {
    unlock_all(chans, locks);
    if (st == WEFT_OK || st == WEFT_ECLOSED) *chosen = ready;
    if (st == WEFT_ENOMEM) st = no_room();
    goto out;
  }
  /* Nothing ready: one entry per case, one decision for them all. */
  call_t call = {.state = WAITING};
  for (size_t i = 0; i < n; i++) {
    entries[i] = (entry_t){.call = &call, .buf = cases[i].buf, .index = i};
    enqueue(cases[i].op == WEFT_SELECT_SEND ? &cases[i].chan->senders : &cases[i].chan->receivers, &entries[i]);
  }
  unlock_all(chans, locks);

  st = await(&call, deadline);

  lock_all(chans, locks);
  for (size_t i = 0; i < n; i++) dequeue(&entries[i]);
  unlock_all(chans, locks);
  if (st == WEFT_OK) {
    *chosen = call.index;
    st = call.closed ? WEFT_ECLOSED : WEFT_OK;
  }
out:
  free(order);
  free(chans);
  free(entries);
  return st;
}
