//! The peer port: a hello, frames under a key the sender does not hold, and the plaintext of an
//! authenticated frame decoded into peer frames and the Raft messages inside them.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tuma_cluster::transport::fuzzing::peer_bytes(data);
});
