//! The business API's consumer keys: which business a key belongs to, held on the shard the
//! key hashes to ([`ShardMap::shard_of_api_key`](crate::account::ShardMap::shard_of_api_key)),
//! so a token request that names only its key finds its business with one read. The secret
//! itself stays in the business's own record (as a keyed digest); this is only the pointer.

use crate::account::Shortcode;
use crate::outcome::ResultCode;

use super::ShardLedger;

/// Most consumer keys one shard indexes.
pub const API_KEYS_MAX: usize = 1_000_000;
/// Longest consumer key.
pub const API_KEY_LEN_MAX: usize = 128;

impl ShardLedger {
    /// Points `consumer_key` at `business`. The same pointer again changes nothing; a key
    /// taken by another business is refused (`AccountExists`).
    pub(super) fn index_api_key(&mut self, consumer_key: &str, business: &Shortcode) -> ResultCode {
        let well_formed = (1..=API_KEY_LEN_MAX).contains(&consumer_key.len())
            && consumer_key
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b':');
        if !well_formed || self.config.shard_map.shard_of_api_key(consumer_key) != self.config.shard
        {
            return ResultCode::NotPermitted;
        }
        match self.state.api_keys.get(consumer_key) {
            Some(existing) if existing == business => ResultCode::Success,
            Some(_) => ResultCode::AccountExists,
            None if self.state.api_keys.len() >= API_KEYS_MAX => ResultCode::Overloaded,
            None => {
                self.state
                    .api_keys
                    .insert(consumer_key.to_string(), business.clone());
                ResultCode::Success
            }
        }
    }

    /// The business a consumer key belongs to, if this shard indexes it.
    pub fn api_key_business(&self, consumer_key: &str) -> Option<&Shortcode> {
        self.state.api_keys.get(consumer_key)
    }
}
