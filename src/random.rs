//! Randomness from the operating system. Failure to read it is not recoverable for a service that
//! mints secrets, so it aborts the start instead of falling back to something weaker. Request ids,
//! which need uniqueness rather than secrecy, are the one exception: see `request_id`.

use std::cell::Cell;

pub(crate) fn bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    #[allow(clippy::expect_used)]
    getrandom::fill(&mut buf).expect("the operating system's random source is unavailable");
    buf
}

/// `n` random bytes as lowercase hex (2n characters).
pub(crate) fn token_hex(n: usize) -> String {
    let mut out = String::with_capacity(n * 2);
    let mut left = n;
    while left > 0 {
        let chunk = bytes::<32>();
        for b in chunk.iter().take(left.min(32)) {
            out.push_str(&format!("{b:02x}"));
        }
        left = left.saturating_sub(32);
    }
    out
}

/// A 16-hex-digit id for a request: unique, not secret, and without a system call. Each thread
/// starts from a random 64-bit value and counts up; the counter goes through a bijective mixer
/// (splitmix64's finaliser), so ids do not show how many requests a thread has served. Two threads
/// collide only if their random starts lie within each other's count, about 1 in 10^10 per pair
/// over a billion requests.
pub(crate) fn request_id() -> String {
    thread_local! {
        static NEXT: Cell<u64> = Cell::new(u64::from_le_bytes(bytes::<8>()));
    }
    let n = NEXT.with(|next| {
        let n = next.get();
        next.set(n.wrapping_add(1));
        n
    });
    format!("{:016x}", mix(n))
}

/// splitmix64's output function: a bijection on u64 that scatters consecutive inputs.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    #[test]
    fn hex_has_the_asked_length_and_differs_each_time() {
        let a = super::token_hex(40);
        assert_eq!(a.len(), 80);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, super::token_hex(40));
    }

    #[test]
    fn request_ids_are_16_hex_digits_and_do_not_repeat() {
        let ids: std::collections::HashSet<String> =
            (0..10_000).map(|_| super::request_id()).collect();
        assert_eq!(ids.len(), 10_000);
        assert!(
            ids.iter()
                .all(|id| id.len() == 16 && id.chars().all(|c| c.is_ascii_hexdigit()))
        );
        let other_thread = std::thread::spawn(super::request_id)
            .join()
            .expect("thread");
        assert!(!ids.contains(&other_thread));
    }
}
