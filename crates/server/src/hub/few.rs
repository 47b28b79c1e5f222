//! A list that usually holds one element, kept without an allocation for that one.

/// A list of `T` that usually has one element (a session's rooms, a user's sessions):
/// one element is kept inline, more in a vector. Every session has such lists, and a
/// vector of one would cost an allocation each.
#[derive(Debug, Default)]
pub(super) enum Few<T> {
    /// No element.
    #[default]
    Zero,
    /// Exactly one.
    One(T),
    /// Any number, once there were two or more.
    Many(Vec<T>),
}

impl<T> Few<T> {
    /// The elements in order.
    pub(super) fn as_slice(&self) -> &[T] {
        match self {
            Few::Zero => &[],
            Few::One(t) => std::slice::from_ref(t),
            Few::Many(v) => v,
        }
    }

    /// Iterates over the elements in order.
    pub(super) fn iter(&self) -> std::slice::Iter<'_, T> {
        self.as_slice().iter()
    }

    /// How many elements there are.
    pub(super) fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// Whether there are none.
    pub(super) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends `item`.
    pub(super) fn push(&mut self, item: T) {
        *self = match std::mem::take(self) {
            Few::Zero => Few::One(item),
            Few::One(first) => Few::Many(vec![first, item]),
            Few::Many(mut v) => {
                v.push(item);
                Few::Many(v)
            }
        };
    }

    /// Keeps only the elements for which `keep` is true, in order.
    pub(super) fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        *self = match std::mem::take(self) {
            Few::Zero => Few::Zero,
            Few::One(t) if keep(&t) => Few::One(t),
            Few::One(_) => Few::Zero,
            Few::Many(mut v) => {
                v.retain(|t| keep(t));
                match (v.len(), v.pop()) {
                    (1, Some(only)) => Few::One(only),
                    (_, Some(last)) => {
                        v.push(last);
                        Few::Many(v)
                    }
                    (_, None) => Few::Zero,
                }
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::Few;

    #[test]
    fn pushes_and_removals_keep_the_order() {
        let mut few = Few::default();
        assert!(few.is_empty());
        few.push(1);
        assert!(matches!(few, Few::One(1)));
        few.push(2);
        few.push(3);
        assert_eq!(few.as_slice(), &[1, 2, 3]);
        few.retain(|&x| x != 2);
        assert_eq!(few.as_slice(), &[1, 3]);
        few.retain(|&x| x == 3);
        assert!(matches!(few, Few::One(3)));
        assert_eq!(few.len(), 1);
        few.retain(|_| false);
        assert!(few.is_empty());
        assert_eq!(
            std::mem::size_of::<Few<u64>>(),
            std::mem::size_of::<Vec<u64>>()
        );
    }
}
