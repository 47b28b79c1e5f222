use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::*;

#[test]
fn a_missing_file_means_the_defaults() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (config, error) = Config::load(&dir.path().join(FILE));
    assert_eq!(config, Config::default());
    assert_eq!(error, None);
    assert!(config.bell && config.nick_colours && config.keys.alt_digits);
    assert_eq!(config.timestamp, "%H:%M");
}

#[test]
fn every_setting_is_read() {
    let text = r#"
# my settings
bell = false            # quiet
timestamp = "%H:%M:%S"
nick_colours = false

[keys]
alt_digits = false
next = ["f6", "ctrl-x"]
prev = 'F5'
"#;
    let c = Config::parse(text).expect("parsed");
    assert!(!c.bell && !c.nick_colours && !c.keys.alt_digits);
    assert_eq!(c.timestamp, "%H:%M:%S");
    let f = |n| KeySpec {
        code: KeyCode::F(n),
        ctrl: false,
        alt: false,
    };
    let ctrl_x = KeySpec {
        code: KeyCode::Char('x'),
        ctrl: true,
        alt: false,
    };
    assert_eq!(c.keys.next, [f(6), ctrl_x]);
    assert_eq!(c.keys.prev, [f(5)]);
}

#[test]
fn a_bad_file_gives_the_defaults_and_a_clear_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(FILE);
    for (text, expected) in [
        ("bell = maybe\n", "line 1: "),
        ("\ncolour = true\n", "line 2: unknown field `colour`"),
        (
            "bell = \"yes\"\n",
            "line 1: invalid type: string \"yes\", expected a boolean",
        ),
        ("timestamp = \"%Y\"\n", "timestamp: only %H"),
        ("[keys]\nnext = \"hyper-q\"\n", "unknown key 'hyper-q'"),
        ("[colours]\n", "line 1: unknown field `colours`"),
        ("just words\n", "line 1: "),
        ("[keys]\nbell = true\n", "line 2: unknown field `bell`"),
    ] {
        std::fs::write(&path, format!("nick_colours = false\n{text}")).expect("write");
        let (config, error) = Config::load(&path);
        assert_eq!(config, Config::default(), "{text}");
        let error = error.expect("an error");
        // The line number counts the first line written above.
        let expected = match expected.strip_prefix("line ") {
            Some(rest) => {
                let (n, what) = rest.split_once(':').expect("line N: what");
                format!("line {}:{what}", n.parse::<u32>().expect("n") + 1)
            }
            None => expected.to_string(),
        };
        assert!(error.contains(&expected), "{error} / {expected}");
        assert!(error.contains(&path.display().to_string()), "{error}");
        assert!(error.ends_with("using the defaults"), "{error}");
    }
}

#[test]
fn timestamps_in_hh_mm_and_hh_mm_ss() {
    // 2023-11-14 22:13:20 UTC.
    let ts = 1_700_000_000_000;
    let mut c = Config::default();
    assert_eq!(c.time(ts, 0), "22:13");
    assert_eq!(c.time(ts, 3600), "23:13");
    assert_eq!(c.time(ts, 7200), "00:13");
    c.timestamp = "%H:%M:%S".into();
    assert_eq!(c.time(ts, 0), "22:13:20");
    c.timestamp = "[%H%%]".into();
    assert_eq!(c.time(ts, -3600), "[21%]");
}

#[test]
fn key_names() {
    let alt_right = KeySpec::parse("Alt-Right").expect("parsed");
    assert!(alt_right.matches(&KeyEvent::new(KeyCode::Right, KeyModifiers::ALT)));
    assert!(!alt_right.matches(&KeyEvent::new(KeyCode::Right, KeyModifiers::NONE)));
    let ctrl_n = KeySpec::parse("ctrl-n").expect("parsed");
    assert!(ctrl_n.matches(&KeyEvent::new(KeyCode::Char('N'), KeyModifiers::CONTROL)));
    assert!(KeySpec::parse("f13").is_none());
    assert!(KeySpec::parse("ctrl-").is_none());
    assert_eq!(
        KeySpec::parse("m-c-a"),
        Some(KeySpec {
            code: KeyCode::Char('a'),
            ctrl: true,
            alt: true
        })
    );
}
