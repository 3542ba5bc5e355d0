//! The in-memory store passes the `RunStore` contract the real stores pass.
use weft_testkit::MemoryRunStore;

weft_testkit::run_store_contract!(async { MemoryRunStore::new() });
weft_testkit::secret_store_contract!(async { MemoryRunStore::new() });
weft_testkit::step_cache_contract!(async { MemoryRunStore::new() });
weft_testkit::run_removal_contract!(async { MemoryRunStore::new() });
weft_testkit::deliveries_contract!(async { MemoryRunStore::new() });
weft_testkit::concurrency_slots_contract!(async { MemoryRunStore::new() });
