//! The contract macros: one per port, each a module of tests that calls
//! the cases in [`super`] on the adapter a test makes.

/// The contract of each port, as its own module of tests.
#[macro_export]
macro_rules! run_index_contract {
    ($make:expr) => {
        mod run_index_contract {
            #[allow(unused_imports)]
            use super::*;
            $crate::run_store_contract!(@cases $make;
                created_run_reads_back_and_lists_newest_first,
                creating_a_run_twice_conflicts,
                updated_run_keeps_its_new_status,
                unfinished_runs_are_listed_until_they_end,
                runs_page_by_filter_and_cursor);
        }
    };
}

#[macro_export]
macro_rules! event_log_contract {
    ($make:expr) => {
        mod event_log_contract {
            #[allow(unused_imports)]
            use super::*;
            $crate::run_store_contract!(@cases $make;
                events_append_in_order_and_read_back,
                append_at_a_stale_length_conflicts_and_writes_nothing,
                an_owner_whose_lease_was_taken_over_cannot_append,
                a_reader_catches_up_from_where_it_stopped);
        }
    };
}

#[macro_export]
macro_rules! step_logs_contract {
    ($make:expr) => {
        mod step_logs_contract {
            #[allow(unused_imports)]
            use super::*;
            $crate::run_store_contract!(@cases $make;
                logs_append_per_attempt,
                a_log_append_lands_once_and_only_where_the_log_ends,
                a_big_log_is_stored_in_bounded_chunks_and_read_in_pages);
        }
    };
}

#[macro_export]
macro_rules! lease_contract {
    ($make:expr) => {
        mod lease_contract {
            #[allow(unused_imports)]
            use super::*;
            $crate::run_store_contract!(@cases $make;
                a_lease_is_exclusive_until_it_expires,
                a_released_lease_is_free);
        }
    };
}

#[macro_export]
macro_rules! attempt_claims_contract {
    ($make:expr) => {
        mod attempt_claims_contract {
            #[allow(unused_imports)]
            use super::*;
            $crate::run_store_contract!(@cases $make;
                one_execution_holds_an_attempt_until_its_claim_expires,
                a_claim_past_its_delivery_limit_is_given_to_no_new_execution,
                finished_and_aborted_claims_are_final);
        }
    };
}

/// Every port's contract, for a store that implements them all.
#[macro_export]
macro_rules! run_store_contract {
    ($make:expr) => {
        $crate::run_index_contract!($make);
        $crate::event_log_contract!($make);
        $crate::step_logs_contract!($make);
        $crate::lease_contract!($make);
        $crate::attempt_claims_contract!($make);
    };
    (@cases $make:expr; $($case:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let store = $make.await;
                $crate::run_store::$case(&store).await;
            }
        )*
    };
}
