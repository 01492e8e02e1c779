//! The seal: a one-time pad that keeps a run's outputs (sensitive ones included) out of its
//! log. Each deploy Job gets a Secret `<job>-seal` holding random bytes (see [`pad_bytes`]),
//! mounted read-only at [`SEAL_DIR`]; the Job's wrapper XORs the outputs file with it and
//! prints hex between the markers; the agent XORs again with the pad, expanded from its seed
//! kept in memory ([`PadSeeds`]) or, after a restart, read back from the Secret. Anyone
//! reading the log (`pods/log`, a log shipper) sees bytes that say nothing without the Secret.
//! Runs that have no outputs file by contract (post-deploy, destroy) get no pad; a plan run
//! gets [`meta::PLAN_SEAL_BYTES`] for its plan bundle (see [`crate::runs::plan`]).
//!
//! A block, after the begin marker: `sealed SIZE` then hex lines of SIZE sealed bytes; or,
//! when the file is larger than the pad, the single line `oversize SIZE LIMIT` (nothing of the
//! file is printed). The wrapper uses only POSIX `od` and `awk`, as found in busybox, Alpine
//! and Debian images: one `od` of the outputs file, one of the pad, one `awk`, in one pass.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, PoisonError};

use alustan_shared::meta;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use ring::rand::{SecureRandom as _, SystemRandom};

/// Where the seal Secret is mounted in the Job's container.
pub const SEAL_DIR: &str = "/alustan-seal";

/// The smallest pad: a resource whose outputs were small (or absent) gets this much.
pub const MIN_PAD_BYTES: usize = 16 * 1024;
/// How many times the last outputs file's size a pad covers: outputs may grow between deploys.
const PAD_HEADROOM: usize = 4;

/// Reads `od -t u1` of the outputs file, a `-` line, then `od -t u1` of the pad; prints the
/// block at the end (so an oversize file prints nothing of itself) and stops reading the pad
/// once it covers the file (the pad's `od` then ends on a closed pipe). At most the largest
/// pad's worth of bytes is held. POSIX awk has no XOR: a 16×16 table of nibble XORs, built
/// first, does it. Variables start at 0 explicitly: mawk indexes an uninitialised counter as
/// `""`, not `0`.
const XOR_AWK: &str = r#"BEGIN { m = 0; n = 0; o = 0; line = ""; for (a = 0; a < 16; a++) for (b = 0; b < 16; b++) { x = 0; p = 1; i = a; j = b; while (i > 0 || j > 0) { if (i % 2 != j % 2) x += p; i = int(i / 2); j = int(j / 2); p *= 2 }; t[a * 16 + b] = x } }
!pad && $1 == "-" { pad = 1; if (m == 0) exit; next }
!pad { for (f = 1; f <= NF; f++) { if (m < MAX) d[m] = $f; m++ }; next }
{ for (f = 1; f <= NF; f++) { if (n >= m) exit; if (n >= MAX) { n++; continue } v = d[n]; k = $f; line = line sprintf("%02x", t[int(v / 16) * 16 + int(k / 16)] * 16 + t[(v % 16) * 16 + k % 16]); if (++n % 32 == 0) { out[o++] = line; line = "" } } }
END { if (n < m) { printf "OVERSIZE %d %d\n", m, n; exit } if (line != "") out[o++] = line; printf "SEALED %d\n", m; for (i = 0; i < o; i++) print out[i] }"#;

/// The shell lines printing the sealed block of `$ALUSTAN_OUTPUTS` (markers excluded).
pub fn print_sealed_block() -> String {
    let (outputs, seal) = (meta::ENV_OUTPUTS_FILE, meta::ENV_SEAL_FILE);
    let awk = XOR_AWK
        .replace("OVERSIZE", meta::OVERSIZE_HEADER)
        .replace("SEALED", meta::SEALED_HEADER)
        // The largest pad: a plan run's (its bundle holds the plan file).
        .replace("MAX", &meta::SEAL_BYTES.max(meta::PLAN_SEAL_BYTES).to_string());
    format!(
        r#"{{ od -A n -t u1 -v "${outputs}"; echo -; od -A n -t u1 -v "${seal}"; }} | awk '{awk}'
"#
    )
}

/// The pad of a deploy of a resource whose last outputs file had `last` bytes (`None`:
/// unknown, after a restart or on a first deploy): [`PAD_HEADROOM`] times that, at least
/// [`MIN_PAD_BYTES`], at most [`meta::SEAL_BYTES`] (the largest outputs file a run may print).
pub fn pad_bytes(last: Option<u64>) -> usize {
    sized(last, MIN_PAD_BYTES, meta::SEAL_BYTES)
}

/// The pad of a plan run: as [`pad_bytes`], between 64 KiB and [`meta::PLAN_SEAL_BYTES`]
/// (unknown: the largest). A plan pad lives as long as its Job (a day by default): a drift
/// check every few minutes must not keep hundreds of 512 KiB Secrets per resource.
pub fn plan_pad_bytes(last: Option<u64>) -> usize {
    sized(last, meta::SEAL_BYTES, meta::PLAN_SEAL_BYTES)
}

/// [`PAD_HEADROOM`] times `last`, within `min..=max`; `max` when unknown.
fn sized(last: Option<u64>, min: usize, max: usize) -> usize {
    last.map_or(max, |bytes| usize::try_from(bytes).unwrap_or(usize::MAX).saturating_mul(PAD_HEADROOM).clamp(min, max))
}

/// The size of each resource's last outputs file (by uid), as its sealed block said: the next
/// pad is sized to it. In memory only: unknown sizes get the largest pad.
#[derive(Debug, Default)]
pub struct OutputsSizes(Mutex<HashMap<String, u64>>);

impl OutputsSizes {
    pub fn remember(&self, uid: &str, bytes: u64) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).insert(uid.to_owned(), bytes);
    }

    pub fn last(&self, uid: &str) -> Option<u64> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).get(uid).copied()
    }

    pub fn forget(&self, uid: &str) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).remove(uid);
    }
}

/// The pad of each resource's run in flight (by uid: one run per resource at a time), kept as
/// its seed so that reading the outputs back needs no GET of the seal Secret (a few bytes
/// each instead of the pad). Unknown after a restart, or for a pad this agent did not write
/// (an adopted run): then the Secret is read.
#[derive(Debug, Default)]
pub struct PadSeeds(Mutex<HashMap<String, (String, PadSeed, usize)>>);

impl PadSeeds {
    /// Remembers that run `job` of resource `uid` got the `len`-byte pad of `seed`.
    pub fn remember(&self, uid: &str, job: &str, seed: PadSeed, len: usize) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).insert(uid.to_owned(), (job.to_owned(), seed, len));
    }

    /// The pad of run `job`, if this agent wrote it; forgotten once taken.
    pub fn take(&self, uid: &str, job: &str) -> Option<Result<Pad, SealError>> {
        let mut seeds = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let (known_job, seed, len) = seeds.get(uid)?;
        if known_job != job {
            return None;
        }
        let pad = Pad::from_seed(seed, *len);
        seeds.remove(uid);
        Some(pad)
    }

    pub fn forget(&self, uid: &str) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).remove(uid);
    }

    /// Forgets the pad of run `job` of resource `uid`, if remembered.
    pub fn forget_run(&self, uid: &str, job: &str) {
        let mut seeds = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if seeds.get(uid).is_some_and(|(known, _, _)| known.as_str() == job) {
            seeds.remove(uid);
        }
    }
}

/// 32 random bytes a pad is expanded from. Its `Debug` never shows them.
#[derive(Clone, PartialEq, Eq)]
pub struct PadSeed([u8; 32]);

impl fmt::Debug for PadSeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PadSeed(<redacted>)")
    }
}

impl PadSeed {
    /// A seed from the system's secure generator.
    pub fn generate() -> Result<Self, SealError> {
        let mut bytes = [0; 32];
        SystemRandom::new().fill(&mut bytes).map_err(|_| SealError::Random)?;
        Ok(Self(bytes))
    }
}

/// Why sealed outputs could not be read. Never holds a byte of them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("cannot draw random bytes for the seal")]
    Random,
    #[error("the outputs file is {size} bytes, more than the {limit} bytes its seal covers (so it was not printed)")]
    Oversize { size: u64, limit: u64 },
    #[error("the seal Secret {0} is gone, so the outputs cannot be unsealed")]
    SecretMissing(String),
    #[error(
        "a Secret {0} exists that is not this run's seal (not owned by its resource or Job, or being deleted): delete it so the run can start"
    )]
    Foreign(String),
    #[error("the seal Secret {secret} has no {key:?} key")]
    NoPad { secret: String, key: &'static str },
    #[error("the sealed outputs block is malformed: {0}")]
    Malformed(String),
}

/// One run's pad. Its `Debug` never shows the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Pad(Vec<u8>);

impl fmt::Debug for Pad {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pad({} bytes)", self.0.len())
    }
}

impl Pad {
    /// `len` bytes from the system's secure generator.
    pub fn generate(len: usize) -> Result<Self, SealError> {
        Self::from_seed(&PadSeed::generate()?, len)
    }

    /// The `len`-byte `ChaCha20` keystream of `seed`: a stream cipher's keystream under a
    /// random, single-use key is as good a pad as random bytes, and the same seed always
    /// gives the same pad. ring exposes `ChaCha20` only within its AEAD: sealing zeros there
    /// yields the keystream itself (the tag is dropped; the nonce is fixed as each key
    /// encrypts only these zeros).
    pub fn from_seed(seed: &PadSeed, len: usize) -> Result<Self, SealError> {
        use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
        let key = UnboundKey::new(&CHACHA20_POLY1305, &seed.0).map_err(|_| SealError::Random)?;
        let mut bytes = vec![0; len];
        let _tag = LessSafeKey::new(key)
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key([0; 12]), Aad::empty(), &mut bytes)
            .map_err(|_| SealError::Random)?;
        Ok(Self(bytes))
    }

    /// A pad of given bytes (tests, benchmarks).
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The pad as the Secret described by `metadata`.
    pub fn to_secret(&self, metadata: ObjectMeta) -> Secret {
        Secret {
            metadata,
            type_: Some("Opaque".into()),
            immutable: Some(true),
            data: Some([(meta::SEAL_KEY.to_owned(), ByteString(self.0.clone()))].into()),
            ..Secret::default()
        }
    }

    /// The pad held by a seal Secret.
    pub fn from_secret(secret: &Secret) -> Result<Self, SealError> {
        let pad = secret.data.as_ref().and_then(|data| data.get(meta::SEAL_KEY));
        pad.map(|bytes| Self(bytes.0.clone())).ok_or_else(|| SealError::NoPad {
            secret: secret.metadata.name.clone().unwrap_or_default(),
            key: meta::SEAL_KEY,
        })
    }
}

/// Whether an outputs block is sealed (its first line is a seal header); a block printed by
/// a Job of an older agent is plain JSON.
pub fn is_sealed(block: &str) -> bool {
    let first = block.lines().next().unwrap_or_default().split_whitespace().next();
    first == Some(meta::SEALED_HEADER) || first == Some(meta::OVERSIZE_HEADER)
}

/// The size of the outputs file a sealed (or oversize) block announces.
pub fn announced_size(block: &str) -> Option<u64> {
    let mut header = block.lines().next()?.split_whitespace();
    let word = header.next()?;
    (word == meta::SEALED_HEADER || word == meta::OVERSIZE_HEADER).then(|| header.next()?.parse().ok())?
}

/// The outputs file a sealed block stands for.
pub fn unseal(block: &str, pad: &Pad) -> Result<Vec<u8>, SealError> {
    let mut lines = block.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split_whitespace().collect();
    let number = |word: Option<&&str>| word.and_then(|w| w.parse::<u64>().ok());
    let size = match header.first() {
        Some(&word) if word == meta::OVERSIZE_HEADER => {
            return match (number(header.get(1)), number(header.get(2))) {
                (Some(size), Some(limit)) => Err(SealError::Oversize { size, limit }),
                _ => Err(SealError::Malformed("an oversize line without its sizes".into())),
            };
        }
        Some(&word) if word == meta::SEALED_HEADER => {
            number(header.get(1)).ok_or_else(|| SealError::Malformed("a sealed line without its size".into()))?
        }
        _ => return Err(SealError::Malformed("no seal header".into())),
    };
    let limit = pad.len() as u64;
    if size > limit {
        return Err(SealError::Oversize { size, limit });
    }
    let hex: String = lines.flat_map(str::split_whitespace).collect();
    let sealed = hex::decode(hex).map_err(|err| SealError::Malformed(format!("not hex ({err})")))?;
    if sealed.len() as u64 != size {
        return Err(SealError::Malformed(format!("{} bytes where its header announces {size}", sealed.len())));
    }
    Ok(xor(&sealed, pad.as_bytes()))
}

/// `data` XOR the start of `pad` (as long as `data`; the caller checks the length).
fn xor(data: &[u8], pad: &[u8]) -> Vec<u8> {
    data.iter().zip(pad).map(|(byte, key)| byte ^ key).collect()
}

/// What the wrapper prints, done in Rust: the reference the shell version is held to.
#[cfg(test)]
pub(crate) fn seal(data: &[u8], pad: &Pad) -> String {
    let mut block = format!("{} {}\n", meta::SEALED_HEADER, data.len());
    for chunk in xor(data, pad.as_bytes()).chunks(32) {
        block.push_str(&hex::encode(chunk));
        block.push('\n');
    }
    block
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_then_unseal_gives_the_bytes_back_and_hides_them() {
        let pad = Pad::generate(meta::SEAL_BYTES).unwrap();
        assert_eq!(pad.len(), meta::SEAL_BYTES);
        let data = br#"{"pw":{"value":"hunter2","sensitive":true}}"#;
        let block = seal(data, &pad);
        assert!(is_sealed(&block));
        assert!(!block.contains("hunter2") && !block.contains(&hex::encode("hunter2")), "{block}");
        assert_eq!(unseal(&block, &pad).unwrap(), data);
        // Another pad gives other bytes: the block says nothing without its own.
        assert_ne!(unseal(&block, &Pad::generate(meta::SEAL_BYTES).unwrap()).unwrap(), data);
    }

    #[test]
    fn a_pad_is_four_times_the_last_outputs_within_bounds_and_the_largest_when_unknown() {
        assert_eq!(pad_bytes(None), meta::SEAL_BYTES);
        assert_eq!(pad_bytes(Some(0)), MIN_PAD_BYTES);
        assert_eq!(pad_bytes(Some(5000)), 20_000);
        assert_eq!(pad_bytes(Some(40_000)), meta::SEAL_BYTES);
        let sizes = OutputsSizes::default();
        sizes.remember("u1", 10);
        assert_eq!((sizes.last("u1"), sizes.last("u2")), (Some(10), None));
        sizes.forget("u1");
        assert_eq!(sizes.last("u1"), None);
        assert_eq!(announced_size("sealed 12\nabcd\n"), Some(12));
        assert_eq!(announced_size("oversize 70000 65536\n"), Some(70000));
        assert_eq!(announced_size("{}\n"), None);
    }

    #[test]
    fn a_seed_gives_the_same_random_looking_pad_each_time() {
        let seed = PadSeed::generate().unwrap();
        let pad = Pad::from_seed(&seed, 4096).unwrap();
        assert_eq!(pad, Pad::from_seed(&seed, 4096).unwrap());
        assert_eq!(Pad::from_seed(&seed, 100).unwrap().as_bytes(), &pad.as_bytes()[..100]);
        assert_ne!(pad, Pad::from_seed(&PadSeed::generate().unwrap(), 4096).unwrap());
        // Not zeros, and every byte value about as frequent (4096 bytes: 16 each on average).
        let mut counts = [0u32; 256];
        pad.as_bytes().iter().for_each(|&b| counts[usize::from(b)] += 1);
        assert!(counts.iter().all(|&c| c < 48), "{counts:?}");
        assert_eq!(format!("{seed:?}"), "PadSeed(<redacted>)");
    }

    #[test]
    fn a_remembered_seed_gives_its_runs_pad_once_and_no_other_runs() {
        let seeds = PadSeeds::default();
        let seed = PadSeed::generate().unwrap();
        let pad = Pad::from_seed(&seed, 64).unwrap();
        seeds.remember("uid", "tf-deploy-a-0", seed, 64);
        assert!(seeds.take("uid", "tf-deploy-b-0").is_none(), "another run's pad");
        assert!(seeds.take("other", "tf-deploy-a-0").is_none());
        assert_eq!(seeds.take("uid", "tf-deploy-a-0").unwrap().unwrap(), pad);
        assert!(seeds.take("uid", "tf-deploy-a-0").is_none(), "taken once");
        seeds.remember("uid", "tf-deploy-a-1", PadSeed::generate().unwrap(), 64);
        seeds.forget_run("uid", "tf-deploy-a-0");
        assert!(seeds.take("uid", "tf-deploy-a-1").is_some(), "another run's pad stays");
        seeds.remember("uid", "tf-deploy-a-1", PadSeed::generate().unwrap(), 64);
        seeds.forget_run("uid", "tf-deploy-a-1");
        assert!(seeds.take("uid", "tf-deploy-a-1").is_none());
        seeds.remember("uid", "tf-deploy-a-1", PadSeed::generate().unwrap(), 64);
        seeds.forget("uid");
        assert!(seeds.take("uid", "tf-deploy-a-1").is_none());
    }

    #[test]
    fn two_pads_differ() {
        assert_ne!(Pad::generate(meta::SEAL_BYTES).unwrap(), Pad::generate(meta::SEAL_BYTES).unwrap());
    }

    #[test]
    fn a_full_pad_unseals_and_one_byte_more_is_oversize() {
        let pad = Pad::from_bytes(vec![0x5a; 64]);
        let data = vec![7; 64];
        assert_eq!(unseal(&seal(&data, &pad), &pad).unwrap(), data);
        let too_big = seal(&data, &Pad::from_bytes(vec![1; 65])).replacen("sealed 64", "sealed 65", 1);
        assert_eq!(unseal(&too_big, &pad), Err(SealError::Oversize { size: 65, limit: 64 }));
        let error = unseal("oversize 70000 65536\n", &pad).unwrap_err();
        assert_eq!(
            error.to_string(),
            "the outputs file is 70000 bytes, more than the 65536 bytes its seal covers (so it was not printed)"
        );
    }

    #[test]
    fn malformed_blocks_are_errors_that_quote_nothing() {
        let pad = Pad::from_bytes(vec![3; 16]);
        for (block, why) in [
            ("{\"a\": 1}\n", "no seal header"),
            ("sealed\n00\n", "a sealed line without its size"),
            ("sealed 2\nzz11\n", "not hex"),
            ("sealed 3\n0011\n", "2 bytes where its header announces 3"),
            ("oversize 9\n", "an oversize line without its sizes"),
        ] {
            let error = unseal(block, &pad).unwrap_err().to_string();
            assert!(error.contains(why), "{block:?}: {error}");
            assert!(!error.contains("zz11") && !error.contains("0011"), "{error}");
        }
        assert!(!is_sealed("{\"a\": {\"value\": 1}}\n"));
    }

    #[test]
    fn a_secret_round_trips_the_pad_and_its_debug_hides_it() {
        let pad = Pad::from_bytes(vec![0xab; 8]);
        let secret = pad.to_secret(ObjectMeta { name: Some("j-seal".into()), ..ObjectMeta::default() });
        assert_eq!(secret.immutable, Some(true));
        assert_eq!(Pad::from_secret(&secret).unwrap(), pad);
        assert_eq!(format!("{pad:?}"), "Pad(8 bytes)");
        let empty = Secret { metadata: secret.metadata.clone(), ..Secret::default() };
        assert_eq!(Pad::from_secret(&empty).unwrap_err().to_string(), "the seal Secret j-seal has no \"pad\" key");
    }
}
