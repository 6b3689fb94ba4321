//! Flow table. TODO (lead).
pub mod community_id;
