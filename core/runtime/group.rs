//! Task groups: tasks spawned together, waited for together, with one failure policy:
//! the first task that fails (returns non-zero) gives the group its code and cancels the
//! others (errgroup, nurseries, libdill's bundles).
//!
//! A group keeps a reference on each task's shell (an owner, as the host's handle is)
//! until it has joined it, so cancelling the siblings never reaches a shell that was
//! recycled for someone else's task.
use std::ffi::{c_void, CString};
use std::ptr;
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering::AcqRel, Ordering::Acquire, Ordering::Release};

use weft_platform::fork_lock::ForkMutex;
use weft_platform::*;

use crate::ffi::error::{fail, Result};
use crate::ffi::handle::{Handle, Lifetime};
use crate::ffi::shell::ShellPool;
use crate::runtime::task::{Joiner, SpawnRequest, Spawned, Task};
use crate::runtime::Runtime;
use crate::types::weft_task_fn;

/// The shell behind a `weft_group_t *`.
#[repr(C)]
pub(crate) struct Group {
    tag: AtomicU32,
    /// The first failing task's code; 0 while none failed.
    failed: AtomicI32,
    state: ForkMutex<GroupState>,
}

struct GroupState {
    rt: Option<&'static Runtime>,
    /// Tasks not joined yet, each with a reference held by the group.
    tasks: Vec<&'static Task>,
    /// Set by `free` before it cancels: a task listed after that is cancelled by its
    /// spawner, and no new spawn starts.
    freeing: bool,
    /// Tasks a `wait` is joining now: a concurrent wait joins another, or parks on
    /// the group until one is done (two waits that joined the same task failed with
    /// "being joined by another thread").
    joining: Vec<&'static Task>,
    /// `wait` calls in progress: only with more than one is there anyone to wake.
    waits: usize,
}

const GROUP_TAG: u32 = 0x5747_5250;
const GROUP_FREED: u32 = 0x5747_5246;

impl Handle for Group {
    const KIND: &'static str = "group";
    const LIVE: &'static [u32] = &[GROUP_TAG];
    const DEAD: u32 = GROUP_FREED;
    const DEAD_REASON: &'static str = "was freed";
    const LIFETIME: Lifetime = Lifetime::Shell;
    fn tag(&self) -> &AtomicU32 {
        &self.tag
    }
}

static SHELLS: ShellPool<Group> = ShellPool::new();

/// The shell pool's lock (see `fork`).
pub(crate) fn shells_lock() -> &'static weft_platform::fork_lock::RawForkLock {
    SHELLS.raw_lock()
}

impl Group {
    pub(crate) fn new(rt: &'static Runtime) -> &'static Group {
        let g = SHELLS.take(|| Group {
            tag: AtomicU32::new(0),
            failed: AtomicI32::new(0),
            state: ForkMutex::new(GroupState {
                rt: None,
                tasks: Vec::new(),
                freeing: false,
                joining: Vec::new(),
                waits: 0,
            }),
        });
        g.failed.store(0, Release);
        *g.state.lock() = GroupState { rt: Some(rt), tasks: Vec::new(), freeing: false, joining: Vec::new(), waits: 0 };
        g.tag.store(GROUP_TAG, Release);
        g
    }

    fn runtime(&self) -> Result<&'static Runtime> {
        match self.state.lock().rt {
            Some(rt) if rt.is_open() => Ok(rt),
            Some(rt) => fail!(
                WEFT_EINVAL,
                "{}",
                crate::runtime::fork::not_open(rt, format_args!("the runtime of group {:p}", self))
            ),
            None => fail!(WEFT_EINVAL, "the runtime of group {:p} was closed", self),
        }
    }

    /// Starts a task in the group; `WEFT_ECANCELED` once a task of the group failed.
    pub(crate) fn spawn(
        &'static self,
        func: weft_task_fn,
        arg: *mut c_void,
        name: Option<CString>,
        stack_size: usize,
    ) -> Result<()> {
        let rt = self.runtime()?;
        let Some(func) = func else { fail!(WEFT_EINVAL, "func is NULL") };
        let failed = self.failed.load(Acquire);
        if failed != 0 {
            fail!(WEFT_ECANCELED, "a task of group {:p} failed (code {failed}): the group takes no new task", self);
        }
        if self.state.lock().freeing {
            fail!(WEFT_ECANCELED, "group {:p} is being freed: it takes no new task", self);
        }
        // The task tells the group when it fails (`task::run`).
        let req = SpawnRequest { func, arg, name, stack_size, detached: false, group: Some(self) };
        // No lock across the spawn: a platform may run the task before spawn returns
        // (on this very thread, for a coroutine platform), and it may fail at once. A
        // failure that comes before the task is listed is seen just after.
        match Task::spawn(rt, req) {
            Ok(Spawned { task: Some(task), .. }) => {
                task.retain();
                let mut state = self.state.lock();
                state.tasks.push(task);
                // Listed after `free`'s cancel took its list: this spawner cancels it.
                let freeing = state.freeing;
                drop(state);
                if freeing || self.failed.load(Acquire) != 0 {
                    let _ = task.cancel();
                }
                Ok(())
            }
            Ok(Spawned { task: None, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// A task of the group returned `code`, not 0. The first failure records its code
    /// and cancels the other tasks.
    pub(crate) fn task_failed(&self, code: i32) {
        if self.failed.compare_exchange(0, code, AcqRel, Acquire).is_err() {
            return;
        }
        // A finished or already-cancelled task ignores it; the caller's own cancel marks
        // a task that is ending anyway.
        self.cancel_all();
    }

    /// Cancels every listed task. Not under the lock: a cancel is a platform call, which
    /// may switch to another task (green, sim) that needs the lock. Each task is
    /// retained meanwhile, so a concurrent `wait` cannot recycle its shell.
    fn cancel_all(&self) {
        let tasks: Vec<&'static Task> = self
            .state
            .lock()
            .tasks
            .iter()
            .map(|task| {
                task.retain();
                *task
            })
            .collect();
        for task in tasks {
            let _ = task.cancel();
            task.release_extra();
        }
    }

    /// `WEFT_EDEADLK` if the caller is a task of the group, which would wait for itself:
    /// found before anything is joined or cancelled.
    fn refuse_member(&self) -> Result<()> {
        // Asked of the task, not looked for in the list: a task may run before its
        // spawner has listed it.
        if crate::runtime::task::current_group().is_some_and(|g| ptr::eq(g, self)) {
            fail!(WEFT_EDEADLK, "a task of group {:p} would wait for itself", self);
        }
        Ok(())
    }

    /// Joins every task (also those spawned meanwhile); the group's code: 0, or the
    /// first failure's. Waits may run concurrently: each joins tasks no other is
    /// joining, and parks on the group while the others join the rest.
    pub(crate) fn wait(&self, deadline: i64) -> Result<i32> {
        self.refuse_member()?;
        self.state.lock().waits += 1;
        let result = self.join_all(deadline);
        self.state.lock().waits -= 1;
        result
    }

    fn join_all(&self, deadline: i64) -> Result<i32> {
        loop {
            let (task, rt) = {
                let mut state = self.state.lock();
                // The newest first: it is the last to run (the oldest have often
                // finished by now, and are joined without waiting), and it is taken off
                // the end of the list, where removing costs nothing. Taken off the
                // front, the removal moved the rest of the list each time: quadratic in
                // the group's size (at 10,000 tasks, some 38,000 instructions of memmove
                // a task).
                let free = state.tasks.iter().rev().find(|t| !state.joining.iter().any(|j| ptr::eq(*j, **t)));
                match (free.copied(), state.rt) {
                    (Some(task), rt) => {
                        // Retained for the join, as the list's reference may go with
                        // another wait's removal.
                        task.retain();
                        state.joining.push(task);
                        (task, rt)
                    }
                    (None, _) if state.tasks.is_empty() => return Ok(self.failed.load(Acquire)),
                    (None, rt) => {
                        drop(state);
                        self.await_other_waits(rt, deadline)?;
                        continue;
                    }
                }
            };
            let joined = task.join(deadline, Joiner::Group);
            let mut state = self.state.lock();
            if let Some(at) = state.joining.iter().position(|j| ptr::eq(*j, task)) {
                state.joining.swap_remove(at);
            }
            let others = state.waits > 1;
            let listed = match joined {
                // From the end: only tasks spawned during the join are behind it.
                Ok(_) => state.tasks.iter().rposition(|t| ptr::eq(*t, task)),
                Err(e) => {
                    let left = state.tasks.len();
                    drop(state);
                    self.wake_other_waits(rt, others);
                    task.release_extra();
                    if e.code == WEFT_ETIMEDOUT {
                        fail!(WEFT_ETIMEDOUT, "{left} task(s) of group {:p} still ran at the deadline", self);
                    }
                    return Err(e);
                }
            };
            if let Some(at) = listed {
                state.tasks.remove(at);
            }
            drop(state);
            self.wake_other_waits(rt, others);
            if listed.is_some() {
                task.release_extra(); // the group's reference
            }
            task.release_extra();
        }
    }

    /// The address the waits of this group park on while the others join.
    fn wait_key(&self) -> usize {
        self as *const Group as usize
    }

    /// Parks until another wait of the group has joined a task or given up, or the
    /// deadline. Nothing to wait for without a runtime (no task was ever spawned).
    fn await_other_waits(&self, rt: Option<&'static Runtime>, deadline: i64) -> Result<()> {
        let Some(rt) = rt else { return Ok(()) };
        let all_taken = || {
            let state = self.state.lock();
            !state.tasks.is_empty() && state.tasks.iter().all(|t| state.joining.iter().any(|j| ptr::eq(*j, *t)))
        };
        match rt.parking()?.park(rt, self.wait_key(), all_taken, deadline) {
            Ok(_) => Ok(()),
            Err(e) if e.code == WEFT_ETIMEDOUT => {
                let left = self.state.lock().tasks.len();
                fail!(WEFT_ETIMEDOUT, "{left} task(s) of group {:p} still ran at the deadline", self);
            }
            Err(e) => Err(e),
        }
    }

    /// Wakes the waits parked in `await_other_waits` (if `others` run): a task was
    /// joined, or a join gave up and its task can be joined by them.
    fn wake_other_waits(&self, rt: Option<&'static Runtime>, others: bool) {
        if let (true, Some(rt)) = (others, rt) {
            if let Ok(parking) = rt.parking() {
                let _ = parking.unpark(rt, self.wait_key(), usize::MAX);
            }
        }
    }

    /// Cancels what still runs, waits for it, and retires the group.
    pub(crate) fn free(&'static self) -> Result<()> {
        self.refuse_member()?;
        // Before it cancels the tasks: it could not wait for them.
        let rt = self.state.lock().rt;
        if let Some(rt) = rt {
            rt.check_runs_caller()?;
        }
        self.state.lock().freeing = true;
        self.cancel_all();
        if let Err(e) = self.wait(WEFT_FOREVER) {
            // Not freed (a task of the group asked, say): the group takes tasks again.
            self.state.lock().freeing = false;
            return Err(e);
        }
        self.tag.store(GROUP_FREED, Release);
        self.state.lock().rt = None;
        SHELLS.give_back(self);
        Ok(())
    }
}
