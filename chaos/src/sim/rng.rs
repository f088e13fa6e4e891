//! The simulator's seeded generator: the one the engine uses too, so a seed replays forever.

pub use tuma_actors::rng::SplitMix64 as SimRng;
