//! Burn's fusion search width is set once per process, before Burn reads its configuration:
//! our default (3), unless MEMTRAIN_FUSION_MAX_BLOCKS says otherwise. Alone in its own test
//! binary because the configuration is process-global.

#[test]
fn the_fusion_search_width_is_ours_unless_overridden() {
    let expected = std::env::var(memtrain::device::FUSION_BLOCKS_ENV).ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    assert_eq!(memtrain::device::configure_fusion(), Some(expected));
    assert_eq!(burn::runtime_config().fusion().beam_search.max_blocks, expected);
    // Once set (or read), it stays.
    assert_eq!(memtrain::device::configure_fusion(), None);
}
