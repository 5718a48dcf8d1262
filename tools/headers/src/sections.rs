//! The layout of `weft.h`: its sections in the order a newcomer needs them, each with
//! a banner, a lead paragraph, the items it holds and any hand-written macros. Every
//! generated item must belong to exactly one section; a new public item that matches
//! none stops the generator until it is placed here.

pub struct Section {
    pub title: &'static str,
    pub lead: &'static str,
    /// Item names; a trailing `*` matches a prefix. Exact names win over prefixes.
    pub items: &'static [&'static str],
    /// C written by hand (macros cbindgen cannot express), placed before the items.
    pub extra: &'static str,
    /// C written by hand that uses the items (inline functions), placed after them, so
    /// that it needs no declarations of its own (a second one warns with
    /// `-Wredundant-decls`).
    pub after: &'static str,
}

pub const SECTIONS: &[Section] = &[
    Section {
        title: "Errors",
        lead: "Every fallible call returns a weft_status_t. The codes are stable and never\n\
               reused; weft_strerror names one and weft_last_error tells the detail of the\n\
               calling thread's last failure.",
        items: &["weft_status_t", "WEFT_OK", "WEFT_E*", "weft_strerror", "weft_last_error"],
        extra: "",
        after: "",
    },
    Section {
        title: "Runtime",
        lead: "A runtime loads one platform plugin (native, green, sim, pthread or a path)\n\
               and owns the tasks spawned on it. Open one with weft_runtime_open, wait for\n\
               its tasks with weft_runtime_drain, close it with weft_runtime_close. The four\n\
               opaque handles of the API are declared here.",
        items: &[
            "weft_runtime_t",
            "weft_task_t",
            "weft_chan_t",
            "weft_blob_t",
            "weft_task_hook_fn",
            "WEFT_CHECK_*",
            "weft_check_report_fn",
            "weft_config_t",
            "WEFT_CAP_*",
            "weft_platform_info_t",
            "weft_config_init",
            "weft_runtime_*",
            "weft_set_default_runtime",
            "weft_version",
            "weft_version_number",
        ],
        extra: "",
        after: "",
    },
    Section {
        title: "Time",
        lead: "The clock is the platform's: real time on native and green, virtual time on\n\
               sim. Deadlines are absolute nanoseconds of weft_now.",
        items: &["WEFT_FOREVER", "weft_now", "weft_deadline_after", "weft_sleep_until", "weft_yield"],
        extra: "",
        after: "",
    },
    Section {
        title: "Tasks",
        lead: "A task runs a function on the runtime's platform: an OS thread on native, a\n\
               green task on green. Join or detach every handle exactly once; cancellation\n\
               is cooperative.",
        items: &[
            "weft_task_fn",
            "WEFT_SPAWN_*",
            "WEFT_DEFAULT_STACK_SIZE",
            "WEFT_MIN_STACK_SIZE",
            "weft_spawn_opts_t",
            "weft_spawn_opts_init",
            "weft_spawn",
            "weft_join",
            "weft_detach",
            "weft_cancel",
            "weft_task_self",
            "weft_task_id",
            "weft_task_cancelled",
            "weft_task_link_chan",
            "weft_self_id",
            "weft_task_set_name",
            "weft_task_name",
        ],
        extra: "",
        after: "",
    },
    Section {
        title: "Task groups and parallel loops",
        lead: "A group runs tasks with one failure policy: the first task that fails gives the\n\
               group its code and cancels the others. weft_parallel_for splits a range over a\n\
               pool of worker tasks, the caller taking part. See docs/parallel.md.",
        items: &["weft_group_*", "weft_range_fn", "weft_parallel_for"],
        extra: "",
        after: "",
    },
    Section {
        title: "Task-local slots",
        lead: "Keys are process-wide; each task (and each host thread) has its own value for\n\
               every key, which follows the task wherever it runs.",
        items: &[
            "weft_key_*",
            "WEFT_KEYS_MAX",
            "WEFT_KEY_SLOT_BITS",
            "weft_local_*",
            "weft_task_set_state",
            "weft_task_state_get",
            "weft_state_tls_offset_",
        ],
        extra: "/* The slot of key `k`: its index in `weft_task_info_t.locals`. */\n\
                #define WEFT_KEY_SLOT(k) WEFT_CAST_(size_t, ((k) & ((1u << WEFT_KEY_SLOT_BITS) - 1u)) - 1u)\n",
        after: "/*\n\
                 * weft_task_state(): the calling task's (or host thread's) state pointer, as set\n\
                 * with weft_task_set_state; NULL until set. Inline, one load through the thread\n\
                 * pointer: libweft keeps the running task's pointer in a thread-local word of its\n\
                 * own and switches it with the task, so a green task reads its own on whatever\n\
                 * worker it runs. Read it again after any weft call that may switch tasks; do not\n\
                 * keep its value in a variable meant as \"this thread's\". Where it cannot be read\n\
                 * inline (another compiler or architecture, or libweft.a without its constructor)\n\
                 * it calls weft_task_state_get().\n\
                 */\n\
                #if (defined(__GNUC__) || defined(__clang__)) && defined(__linux__) && defined(__x86_64__)\n\
                static inline void *weft_task_state(void) {\n\
                \x20 void *state;\n\
                \x20 ptrdiff_t offset = weft_state_tls_offset_;\n\
                \x20 if (__builtin_expect(offset == 0, 0)) return weft_task_state_get();\n\
                \x20 __asm__ volatile(\"movq %%fs:(%1), %0\" : \"=r\"(state) : \"r\"(offset));\n\
                \x20 return state;\n\
                }\n\
                #elif (defined(__GNUC__) || defined(__clang__)) && defined(__linux__) && defined(__aarch64__)\n\
                static inline void *weft_task_state(void) {\n\
                \x20 char *tp;\n\
                \x20 ptrdiff_t offset = weft_state_tls_offset_;\n\
                \x20 if (__builtin_expect(offset == 0, 0)) return weft_task_state_get();\n\
                \x20 __asm__ volatile(\"mrs %0, tpidr_el0\" : \"=r\"(tp));\n\
                \x20 return *(void *const volatile *)(tp + offset);\n\
                }\n\
                #else\n\
                static inline void *weft_task_state(void) { return weft_task_state_get(); }\n\
                #endif\n",
    },
    Section {
        title: "Mutexes",
        lead: "Mutexes live in host memory (a global, a struct member). They always check\n\
               their errors: a relock by the owner is WEFT_EDEADLK (or counted, for a\n\
               recursive mutex), an unlock by anyone else WEFT_EPERM.",
        items: &["WEFT_MUTEX_*", "weft_mutex_*"],
        extra: "// The first word of a statically initialised sync object: the tag weft reads at\n\
                // offset 0, in the host's byte order.\n\
                #if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__\n\
                #define WEFT_STATIC_TAG_(tag) (WEFT_CAST_(uint64_t, tag) << 32)\n\
                #else\n\
                #define WEFT_STATIC_TAG_(tag) WEFT_CAST_(uint64_t, tag)\n\
                #endif\n\n\
                // Static initialiser of a (plain) weft_mutex_t in static storage: the mutex binds\n\
                // to a runtime on first use (weft_set_default_runtime names which; else the\n\
                // caller's, else the one opened last), with every check afterwards as if\n\
                // weft_mutex_init had been called. weft_mutex_destroy works on it, used or not.\n\
                #define WEFT_MUTEX_INIT {{WEFT_STATIC_TAG_(0x574d5453u)}}\n",
        after: "",
    },
    Section {
        title: "Condition variables",
        lead: "Conditions live in host memory and are used with a weft mutex. Waits are\n\
               cancellation points; spurious wake-ups happen.",
        items: &["WEFT_COND_*", "weft_cond_*"],
        extra: "// Static initialiser of a weft_cond_t (binds on first use, as WEFT_MUTEX_INIT).\n\
                #define WEFT_COND_INIT {{WEFT_STATIC_TAG_(0x57435453u)}}\n",
        after: "",
    },
    Section {
        title: "Readers-writer locks",
        lead: "Readers-writer locks live in host memory; writers are not starved.",
        items: &["WEFT_RWLOCK_*", "weft_rwlock_*"],
        extra: "// Static initialiser of a weft_rwlock_t (binds on first use, as WEFT_MUTEX_INIT).\n\
                #define WEFT_RWLOCK_INIT {{WEFT_STATIC_TAG_(0x57525453u)}}\n",
        after: "",
    },
    Section {
        title: "Parking, semaphores, barriers, once",
        lead: "Parking on an address is what a VM builds one-byte locks on (WebKit's\n\
               ParkingLot, CPython's PyMutex): weft_wait_on/weft_wake are futex-style,\n\
               weft_park/weft_unpark validate under the bucket lock. Semaphores, barriers and\n\
               once are built on them. Parking parks the task, not the thread, where the\n\
               platform can. See docs/parking.md.",
        items: &[
            "weft_park_validate_fn",
            "weft_wait_on",
            "weft_wake",
            "weft_park",
            "weft_unpark",
            "weft_sem_*",
            "weft_barrier_*",
            "weft_once*",
        ],
        extra: "// Static initialiser of a weft_once_t.\n#define WEFT_ONCE_INIT {{0, 0}}\n",
        after: "",
    },
    Section {
        title: "Channels and select",
        lead: "Channels carry fixed-size elements, copied in and out: rendezvous, bounded or\n\
               unbounded. An elem_drop callback makes a channel of owned pointers leak-free;\n\
               weft_select waits on several sends and receives at once.",
        items: &["weft_chan_*", "WEFT_SELECT_*", "weft_select_case_t", "weft_select"],
        extra: "// `weft_chan_new` capacity: the channel never fills; a send never waits (it fails\n\
                // with WEFT_ENOMEM only when memory runs out).\n\
                #define WEFT_CHAN_UNBOUNDED SIZE_MAX\n",
        after: "",
    },
    Section {
        title: "IO readiness waits",
        lead: "A task waits for a file descriptor (socket, pipe, eventfd, terminal) to become\n\
               readable or writable, parking the task, not the thread, where the platform can.\n\
               The fd stays the host's; call weft_fd_forget before closing one. See docs/io.md.",
        items: &["WEFT_IO_*", "weft_fd_*"],
        extra: "",
        after: "",
    },
    Section {
        title: "Blobs",
        lead: "Immutable byte payloads shared by reference count: the third way (beside\n\
               copying and moving) for a value to cross a task boundary.",
        items: &["weft_blob_*"],
        extra: "",
        after: "",
    },
    Section {
        title: "VM integration",
        lead: "For language VMs with a garbage collector: threads the host made become\n\
               mutators with weft_thread_attach; managed code polls WEFT_SAFEPOINT_POLL; a\n\
               collector stops the world with weft_stw_begin, walks the mutators with\n\
               weft_tasks_foreach and resumes with weft_stw_end. Code that blocks outside\n\
               weft runs inside weft_blocking_begin / weft_blocking_end. See docs/vm.md.",
        items: &[
            "WEFT_TASK_*",
            "WEFT_SAVED_REGS",
            "weft_task_info_t",
            "weft_task_visit_fn",
            "weft_thread_*",
            "weft_safepoint",
            "weft_safepoint_flag",
            "weft_stw_*",
            "weft_blocking_*",
            "weft_tasks_foreach",
            "weft_task_stack",
        ],
        extra: "/*\n\
                 * WEFT_SAFEPOINT_POLL(rt, flag): the inline safepoint poll, for the loop back-edges,\n\
                 * calls and allocation sites of managed code. `flag` is the value of\n\
                 * weft_safepoint_flag(rt), fetched once and kept (it never changes for a runtime).\n\
                 * When no stop-the-world is requested the poll is one relaxed atomic load and one\n\
                 * branch; otherwise it calls weft_safepoint(rt), which parks the caller until the stop\n\
                 * ends. With a compiler that lacks the GNU atomic builtins it is the plain call.\n\
                 */\n\
                #if defined(__GNUC__) || defined(__clang__)\n\
                /* The flag's word, for the poll below (a function: any pointer converts to its\n\
                 * parameter, and no cast is written at the caller). */\n\
                static inline const volatile uint32_t *weft_poll_word_(const volatile void *flag) {\n\
                \x20 return WEFT_CAST_(const volatile uint32_t *, flag);\n\
                }\n\
                #define WEFT_SAFEPOINT_POLL(rt, flag)                                                   \\\n\
                \x20 do {                                                                                  \\\n\
                \x20   if (__builtin_expect(__atomic_load_n(weft_poll_word_(flag), __ATOMIC_RELAXED) != 0, 0)) \\\n\
                \x20     (void)weft_safepoint(rt);                                                         \\\n\
                \x20 } while (0)\n\
                #else\n\
                #define WEFT_SAFEPOINT_POLL(rt, flag)                                                   \\\n\
                \x20 do {                                                                                  \\\n\
                \x20   (void)(flag);                                                                       \\\n\
                \x20   (void)weft_safepoint(rt);                                                           \\\n\
                \x20 } while (0)\n\
                #endif\n",
        after: "",
    },
];

/// The section an item belongs to: an exact name first, else the longest prefix.
pub fn section_of(name: &str) -> Option<usize> {
    let exact = SECTIONS.iter().position(|s| s.items.contains(&name));
    exact.or_else(|| {
        SECTIONS
            .iter()
            .enumerate()
            .flat_map(|(i, s)| s.items.iter().map(move |p| (i, p)))
            .filter_map(|(i, p)| p.strip_suffix('*').filter(|prefix| name.starts_with(prefix)).map(|pf| (i, pf.len())))
            .max_by_key(|&(_, len)| len)
            .map(|(i, _)| i)
    })
}
