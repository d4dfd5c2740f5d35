//! Subcommands whose arguments clap builds only when they are parsed.
//!
//! clap's derive builds the whole command tree before it parses: every
//! argument of every subcommand. That was half of the half millisecond
//! a `strata mount` spent on its command line here, paid twice per
//! container by a script running `create` and `mount`. [`Lazy`] wraps a
//! subcommand's arguments (or its own subcommands) so that they are
//! added through `Command::defer`: only the subcommand named on the
//! command line is built. Help, errors and the parsed values are the
//! same.

use clap::{ArgMatches, Args, Command, Error, FromArgMatches, Subcommand};

/// `T`, built by clap only when its subcommand is the one parsed.
pub struct Lazy<T>(pub T);

impl<T: FromArgMatches> FromArgMatches for Lazy<T> {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, Error> {
        T::from_arg_matches(m).map(Lazy)
    }

    fn from_arg_matches_mut(m: &mut ArgMatches) -> Result<Self, Error> {
        T::from_arg_matches_mut(m).map(Lazy)
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), Error> {
        self.0.update_from_arg_matches(m)
    }

    fn update_from_arg_matches_mut(&mut self, m: &mut ArgMatches) -> Result<(), Error> {
        self.0.update_from_arg_matches_mut(m)
    }
}

impl<T: Args> Args for Lazy<T> {
    fn augment_args(cmd: Command) -> Command {
        cmd.defer(keep_about::<T, false>)
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        cmd.defer(keep_about::<T, true>)
    }

    fn group_id() -> Option<clap::Id> {
        T::group_id()
    }
}

/// `T`'s arguments added to `cmd`, keeping the text the subcommand's own
/// doc comment gave it: clap sets a variant's text after its arguments,
/// so the text of `T`'s doc comment never showed, and must not now that
/// the arguments come last.
fn keep_about<T: Args, const UPDATE: bool>(cmd: Command) -> Command {
    let (about, long) = (cmd.get_about().cloned(), cmd.get_long_about().cloned());
    let cmd = if UPDATE {
        T::augment_args_for_update(cmd)
    } else {
        T::augment_args(cmd)
    };
    let Some(about) = about else {
        return cmd;
    };
    let cmd = cmd.about(about);
    match long {
        Some(long) => cmd.long_about(long),
        None => cmd.long_about(None::<&str>),
    }
}

impl<T: Subcommand> Subcommand for Lazy<T> {
    fn augment_subcommands(cmd: Command) -> Command {
        cmd.defer(T::augment_subcommands)
    }

    fn augment_subcommands_for_update(cmd: Command) -> Command {
        cmd.defer(T::augment_subcommands_for_update)
    }

    fn has_subcommand(name: &str) -> bool {
        T::has_subcommand(name)
    }
}
