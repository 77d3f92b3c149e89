//! Random bytes for states, PKCE verifiers, cookie nonces and rustls's
//! handshakes, from a per-thread generator seeded by getrandom(2).
//!
//! Drawing every byte from the kernel cost 1.7 % of a redirect's CPU: its
//! ChaCha20 is plain code, 64-byte block by block. Here the kernel gives a
//! 256-bit key, and AES-256 in counter mode (ring's AES-GCM sealing zeros,
//! so its hardware AES) stretches it, 4 KiB at a time. The first 32 bytes
//! of each stretch become the next key and the old key is overwritten
//! ("fast key erasure", as in the kernel's own generator and OpenBSD's
//! arc4random): a copy of the state taken later does not reveal bytes
//! already handed out (ring's expanded copy of a key is not wiped; it is
//! freed stack, soon reused). A fresh key from the kernel replaces the
//! chain every 1 MiB. Every byte is handed out once and wiped. The server
//! never forks, so no two processes share a state.

use std::cell::RefCell;

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::rand::SecureRandom;

/// Bytes made per stretch: the next key, then the output.
const STRETCH: usize = KEY + OUTPUT;
const KEY: usize = 32;
const OUTPUT: usize = 4096;
/// Stretches between fresh keys from the kernel: 1 MiB of output.
const STRETCHES_PER_SEED: u32 = 256;

/// Fills `out` with fresh random bytes.
pub fn fill(out: &mut [u8]) {
    thread_local! {
        static GENERATOR: RefCell<Generator> = const { RefCell::new(Generator::new()) };
    }
    GENERATOR.with(|generator| generator.borrow_mut().fill(out));
}

/// The state of one thread's generator.
struct Generator {
    key: [u8; KEY],
    /// The current stretch; bytes before `used` are handed out (and zero).
    stretch: Vec<u8>,
    used: usize,
    /// Stretches left before the kernel gives a new key; 0 at the start.
    stretches_left: u32,
}

impl Generator {
    const fn new() -> Generator {
        Generator { key: [0; KEY], stretch: Vec::new(), used: 0, stretches_left: 0 }
    }

    fn fill(&mut self, out: &mut [u8]) {
        let mut filled = 0;
        while filled < out.len() {
            if self.used == self.stretch.len() {
                self.next_stretch();
            }
            let take = (out.len() - filled).min(self.stretch.len() - self.used);
            let source = &mut self.stretch[self.used..self.used + take];
            out[filled..filled + take].copy_from_slice(source);
            source.fill(0);
            self.used += take;
            filled += take;
        }
    }

    /// Makes the next stretch and takes the next key from its start.
    fn next_stretch(&mut self) {
        if self.stretches_left == 0 {
            // getrandom(2) does not fail once the kernel's pool is
            // initialised, which is long done by the time a server runs.
            ring::rand::SystemRandom::new()
                .fill(&mut self.key)
                .expect("the OS random number generator failed");
            self.stretches_left = STRETCHES_PER_SEED;
        }
        self.stretches_left -= 1;
        // All zeros already, but the first time: every byte handed out was
        // wiped, and so was the key.
        self.stretch.resize(STRETCH, 0);
        debug_assert!(self.stretch.iter().all(|byte| *byte == 0));
        let cipher =
            LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &self.key).expect("a 32-byte AES-256 key"));
        // Each key seals exactly one buffer, so the fixed nonce never
        // repeats under a key. Sealing zeros leaves the keystream; the tag
        // is of no use.
        let _tag = cipher
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key([0; 12]),
                Aad::empty(),
                &mut self.stretch,
            )
            .expect("4 KiB is within AES-GCM's length limit");
        self.key.copy_from_slice(&self.stretch[..KEY]);
        self.stretch[..KEY].fill(0);
        self.used = KEY;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A generator whose chain starts from `key` instead of the kernel.
    fn from_key(key: [u8; KEY]) -> Generator {
        Generator { key, stretch: Vec::new(), used: 0, stretches_left: STRETCHES_PER_SEED }
    }

    #[test]
    fn the_stream_is_aes_256_in_counter_mode_and_the_key_moves_on() {
        // The GCM specification's test case 14: AES-256, key, IV and
        // plaintext all zero; its first ciphertext block is this keystream.
        let mut generator = from_key([0; KEY]);
        generator.fill(&mut [0; 1]);
        assert_eq!(generator.key[..16], *b"\xce\xa7\x40\x3d\x4d\x60\x6b\x6e\x07\x4e\xc5\xd3\xba\xf3\x9d\x18");
        assert_eq!(generator.stretch[..KEY + 1], [0; KEY + 1], "the key and the byte handed out are wiped");
        // The next stretch runs under the new key: none of its output
        // repeats the first one's.
        let first = generator.stretch[KEY + 1..].to_vec();
        let mut second = vec![0; OUTPUT];
        generator.fill(&mut vec![0; OUTPUT - 1]);
        generator.fill(&mut second);
        assert_ne!(first[..64], second[..64]);
        assert_ne!(second[..64], [0; 64]);
    }

    #[test]
    fn the_kernel_gives_a_new_key_every_mebibyte() {
        let mut generator = from_key([0; KEY]);
        let mut chained = from_key([0; KEY]);
        chained.stretches_left = u32::MAX;
        let mut sink = vec![0; OUTPUT];
        for _ in 0..STRETCHES_PER_SEED {
            generator.fill(&mut sink);
            chained.fill(&mut sink);
        }
        assert_eq!(generator.key, chained.key, "the same chain for 1 MiB");
        generator.fill(&mut sink);
        chained.fill(&mut sink);
        assert_ne!(generator.key, chained.key, "then a key from the kernel");
        assert_eq!(generator.stretches_left, STRETCHES_PER_SEED - 1);
    }

    #[test]
    fn output_is_spread_over_every_byte_value_and_never_repeats() {
        let mut bytes = vec![0; 1 << 20];
        // In pieces of odd sizes, across stretch boundaries.
        for piece in bytes.chunks_mut(4099) {
            fill(piece);
        }
        let mut counts = [0u32; 256];
        for byte in &bytes {
            counts[usize::from(*byte)] += 1;
        }
        // 4,096 expected per value; a uniform source stays within ±6
        // standard deviations (±384) with overwhelming probability.
        assert!(counts.iter().all(|n| (3_712..=4_480).contains(n)), "{counts:?}");
        let mut blocks: Vec<&[u8]> = bytes.chunks(16).collect();
        blocks.sort_unstable();
        blocks.dedup();
        assert_eq!(blocks.len(), (1 << 20) / 16, "no 16-byte block repeats");
    }
}
