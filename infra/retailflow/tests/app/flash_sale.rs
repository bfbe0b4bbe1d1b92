//! `retailflow bench-flash-sale` as a specification: shoppers arriving for a
//! hot SKU through checkout validation, on the stock store with DynamoDB's
//! contention rules, each get an answer, every unit is held once, and every
//! unit is back once the holds expire. (The latency figures are the
//! benchmark's to print, not a test's to time.)

use std::time::Duration;

use retailflow::bench_flash_sale::{run, FlashSale};
use retailflow_core::adapters::contention::ContentionModel;

fn sale(shoppers: usize, units: u32, skus: usize, cart_lines: usize, shards: u16) -> FlashSale {
    FlashSale {
        shoppers,
        units,
        skus,
        seconds: 2.0,
        cart_lines,
        shards: Some(shards),
        model: ContentionModel::default(),
        seed: 7,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flash_sale_holds_every_unit_once_and_answers_every_shopper() {
    let f = run(&sale(400, 40, 1, 1, 4)).await.unwrap();
    assert_eq!(f.held + f.sold_out + f.unavailable, 400);
    assert_eq!(f.held, 40, "every unit held, once");
    assert_eq!(f.units_held, [40]);
    assert_eq!(f.units_free, [0]);
    assert_eq!(f.units_back, [40], "none leaked once the holds expired");
    assert!(f.latencies.iter().all(|l| *l < Duration::from_secs(5)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_line_carts_over_several_hot_skus_never_oversell_and_leak_nothing() {
    let f = run(&sale(300, 15, 5, 3, 3)).await.unwrap();
    assert_eq!(f.held + f.sold_out + f.unavailable, 300);
    for (held, free) in f.units_held.iter().zip(&f.units_free) {
        assert!(*held <= 15, "{:?}", f.units_held);
        assert_eq!(
            held + free,
            15,
            "held {:?}, free {:?}",
            f.units_held,
            f.units_free
        );
    }
    assert!(f.held > 0);
    assert_eq!(f.units_back, [15; 5]);
}
