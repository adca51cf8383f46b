//! A tiny seedable random number generator (SplitMix64).
//!
//! The demo needs only reproducible mixes and unique ids, not cryptographic quality, so a dozen
//! lines beat another dependency.

use std::hash::{BuildHasher, RandomState};

/// SplitMix64: fast, seedable, and good enough to pick request kinds and generate trace ids.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator whose sequence is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// A generator seeded from the OS randomness behind std's `RandomState`, for ids that must
    /// differ between runs even when the request mix is reproduced with the same seed.
    pub fn from_entropy() -> Self {
        Self(RandomState::new().hash_one(std::process::id()))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform number in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence() {
        let (mut a, mut b) = (SplitMix64::new(7), SplitMix64::new(7));
        for _ in 0..10 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        let u = a.unit();
        assert!((0.0..1.0).contains(&u));
    }
}
