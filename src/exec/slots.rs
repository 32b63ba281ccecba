//! A cap on the queries one caller runs at once, so that one caller cannot
//! take every connection of the pool while others wait.
//!
//! Takes a caller's key ([`crate::auth::Principal::caller_key`]) and a
//! deadline; gives a slot held for the query's life. Callers with nothing
//! running take no memory: a caller's semaphore goes when its last slot
//! is returned and nobody waits for one.

use crate::deadline::{Deadline, Elapsed};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub struct CallerSlots {
    per_caller: u32,
    callers: Mutex<HashMap<u64, Arc<Semaphore>>>,
}

/// One of a caller's slots, returned when dropped.
pub struct Slot<'a> {
    permit: Option<OwnedSemaphorePermit>,
    semaphore: Arc<Semaphore>,
    caller: u64,
    slots: &'a CallerSlots,
}

impl CallerSlots {
    pub fn new(per_caller: u32) -> Self {
        Self {
            per_caller: per_caller.max(1),
            callers: Mutex::new(HashMap::new()),
        }
    }

    pub fn per_caller(&self) -> u32 {
        self.per_caller
    }

    /// Waits (until `deadline`) for one of `caller`'s slots.
    pub async fn acquire(&self, caller: u64, deadline: Deadline) -> Result<Slot<'_>, Elapsed> {
        let semaphore = Arc::clone(
            self.lock()
                .entry(caller)
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_caller as usize))),
        );
        // On timeout the clone is dropped here; the next release forgets
        // the caller once nobody else holds or waits.
        let permit = deadline
            .run(Arc::clone(&semaphore).acquire_owned())
            .await?
            .map_err(|_| Elapsed)?;
        Ok(Slot {
            permit: Some(permit),
            semaphore,
            caller,
            slots: self,
        })
    }

    /// Callers with a semaphore right now.
    pub fn callers(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Semaphore>>> {
        self.callers.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        drop(self.permit.take());
        let mut callers = self.slots.lock();
        // Held only by the map and this slot, every permit back: no one
        // runs or waits (a waiter holds a clone, taken under this lock).
        if Arc::strong_count(&self.semaphore) == 2
            && self.semaphore.available_permits() == self.slots.per_caller as usize
        {
            callers.remove(&self.caller);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_caller_gets_at_most_its_share_and_others_are_not_held_up() {
        let slots = CallerSlots::new(2);
        let soon = || Deadline::after(Duration::from_millis(50));
        let a1 = slots.acquire(1, soon()).await.unwrap();
        let a2 = slots.acquire(1, soon()).await.unwrap();
        assert!(
            slots.acquire(1, soon()).await.is_err(),
            "a third waits past its deadline"
        );
        let b = slots.acquire(2, soon()).await;
        assert!(b.is_ok(), "another caller is not held up");
        drop(b);
        drop(a1);
        let a3 = slots.acquire(1, soon()).await;
        assert!(a3.is_ok(), "a returned slot is reusable");
        drop((a2, a3));
        assert_eq!(slots.callers(), 0, "idle callers take no memory");
    }
}
