//! Randomness from the operating system. Failure to read it is not recoverable for a service that
//! mints secrets, so it aborts the start instead of falling back to something weaker.

pub fn bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    #[allow(clippy::expect_used)]
    getrandom::fill(&mut buf).expect("the operating system's random source is unavailable");
    buf
}

/// `n` random bytes as lowercase hex (2n characters).
pub fn token_hex(n: usize) -> String {
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

#[cfg(test)]
mod tests {
    #[test]
    fn hex_has_the_asked_length_and_differs_each_time() {
        let a = super::token_hex(40);
        assert_eq!(a.len(), 80);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, super::token_hex(40));
    }
}
