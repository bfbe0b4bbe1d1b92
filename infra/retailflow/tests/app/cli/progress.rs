//! The long runs say how far they have got on a terminal, and nothing but
//! their report anywhere else.

use super::*;

#[test]
fn chaos_is_quiet_off_a_terminal_and_shows_its_progress_on_one() {
    let dir = fresh_dir();
    let out = cli_in(&dir)
        .current_dir(repo())
        .args(["chaos", "--orders", "20"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.lines().count() <= 3, "{err}");
    assert!(!err.contains('\r') && !err.contains("20/20"), "{err}");

    // On a terminal (script(1) gives it one): the bar, to the last order.
    let bin = env!("CARGO_BIN_EXE_retailflow");
    let out = Command::new("script")
        .args(["-qec", &format!("{bin} chaos --orders 20"), "/dev/null"])
        .current_dir(repo())
        .env("RETAILFLOW_DATA_DIR", &dir)
        .output()
        .expect("script(1) from util-linux runs the command on a terminal");
    let shown = String::from_utf8_lossy(&out.stdout);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(shown.contains("20/20 orders"), "{shown}");
}
