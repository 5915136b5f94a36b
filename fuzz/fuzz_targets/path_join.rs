//! Any bytes as a name: a name that a kind's rule accepts always joins, and
//! whatever `stack_sys::join` accepts is one file name below its directory
//! (never `..`, never absolute, never deeper). Pure: nothing is written.
#![no_main]

use std::path::{Component, Path};

use libfuzzer_sys::fuzz_target;
use stack_model::names::{check, Kind};

fuzz_target!(|data: &[u8]| {
    let name = String::from_utf8_lossy(data);
    let dir = Path::new("/var/lib/stack/volumes");
    let joined = stack_sys::join(dir, &name);
    for kind in Kind::ALL {
        if check(kind, &name).is_ok() {
            assert!(joined.is_ok(), "{kind:?} `{name}` passes its rule but not join");
        }
    }
    if let Ok(p) = joined {
        assert_eq!(p.parent(), Some(dir), "{name:?}");
        assert!(p.components().skip(dir.components().count()).all(|c| matches!(c, Component::Normal(_))));
        assert_eq!(p.components().count(), dir.components().count() + 1, "{name:?}");
    }
});
