//! A list of entries that finish on their own (stream acknowledgements, stream handles), kept for
//! whoever may still need the live ones.

/// Entries kept until they are finished. Finished ones are swept out whenever the list has
/// doubled since the last sweep, so an owner that lives long and sees many short-lived entries
/// (a session and its streams) does O(1) amortised work per entry and holds at most about twice
/// the live ones.
#[derive(Debug)]
pub struct SweptList<T> {
    entries: Vec<T>,
    /// Length at which the next push sweeps.
    sweep_at: usize,
}

impl<T> Default for SweptList<T> {
    fn default() -> Self {
        Self { entries: Vec::new(), sweep_at: 0 }
    }
}

impl<T> SweptList<T> {
    /// Adds `entry`, first sweeping out those for which `live` is false when it is time to.
    pub fn push(&mut self, entry: T, mut live: impl FnMut(&mut T) -> bool) {
        if self.entries.len() >= self.sweep_at {
            self.entries.retain_mut(|e| live(e));
            self.sweep_at = (self.entries.len() * 2).max(64);
        }
        self.entries.push(entry);
    }

    /// Takes every entry, leaving the list empty (and its memory freed).
    pub fn take(&mut self) -> Vec<T> {
        std::mem::take(&mut self.entries)
    }
}

#[cfg(test)]
mod tests {
    use super::SweptList;

    #[test]
    fn sweeps_finished_entries_as_it_doubles() {
        let mut list = SweptList::default();
        for i in 0..1000 {
            // Only multiples of 100 stay live.
            list.push(i, |e: &mut i32| *e % 100 == 0);
        }
        let kept = list.take();
        assert!(kept.len() < 200, "finished entries were swept: {} kept", kept.len());
        assert!((0..1000).step_by(100).all(|i| kept.contains(&i)), "live entries stay");
        assert!(list.take().is_empty());
    }
}
