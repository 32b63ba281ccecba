//! Widget bundles (seed 002): third-party widget code fetched once from
//! its developer's origin, pinned by SHA-256, analysed, stored by content
//! and served from here at a versioned, immutable URL, while the origin
//! is re-checked for a switch.
//!
//! | part | module | does |
//! |---|---|---|
//! | fetch | [`fetch`] | one bundle from its origin: size cap, redirects, content type, SSRF guard |
//! | analyse | [`analyse`] | pure: findings of a bundle's JavaScript (oxc) |
//! | store | [`store`] | content-addressed blobs and their compressed variants (`object_store`) |

pub mod analyse;
pub mod fetch;
pub mod store;
