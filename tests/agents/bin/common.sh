# Shared by the stand-in agent CLIs: record what the CLI was given, and
# pick a behaviour from the prompt (a line `stand-in: <mode>` in the story).
# The stand-ins accept exactly the flags of the real CLIs that the presets
# use (and a few more), and fail on anything else the way the real ones do.
# Where to record: STANDIN_REC, else what $HOME/.standin-rec says (for a
# config that passes no STANDIN_* to its agent), else /tmp.
# Under a filesystem sandbox that leaves the test's folder out, like a real
# CLI it keeps to what it may write: its private TMPDIR.
rec_dir=${STANDIN_REC:-$(cat "$HOME/.standin-rec" 2>/dev/null || echo /tmp)}
if ! (: > "$rec_dir/.probe-$$") 2>/dev/null; then
  rec_dir=${TMPDIR:-/tmp}
else
  rm -f "$rec_dir/.probe-$$"
fi
id=${AI_SDLC_STORY_ID:-none}
record_argv() { printf '%s\n' "$@" > "$rec_dir/$id.argv"; }
read_prompt() { prompt=$(cat); printf '%s' "$prompt" > "$rec_dir/$id.stdin"; }
mode() {
  case "$prompt" in
    *"stand-in: auth-retries"*) echo auth-retries ;;
    *"stand-in: auth"*) echo auth ;;
    *"stand-in: quota"*) echo quota ;;
    *"stand-in: rate-limit-once"*)
      n=$(cat "$rec_dir/$id.attempts" 2>/dev/null || echo 0)
      echo $((n + 1)) > "$rec_dir/$id.attempts"
      if [ "$n" -eq 0 ]; then echo rate-limit; else echo ok; fi ;;
    *"stand-in: rate-limit"*) echo rate-limit ;;
    *"stand-in: hang"*) echo hang ;;
    *"stand-in: spend"*) echo spend ;;
    *"stand-in: tty"*) echo tty ;;
    *"stand-in: ignored"*) echo ignored ;;
    *) echo ok ;;
  esac
}
# The work a successful agent does: a file in its worktree (and, asked to,
# a git-ignored one, like a build output).
do_work() {
  case "$prompt" in *"stand-in: slow"*) sleep 1 ;; esac
  printf 'work of %s by %s\n' "$id" "$1" > "notes-$1.txt"
  case "$prompt" in *"stand-in: ignored"*) mkdir -p out && echo "build output" > out/cache.txt ;; esac
}
hang() { while :; do sleep 1; done; }
# The account's usage cap, shared by every story of a test: `cap_until`
# holds when it lifts (seconds since the epoch). A story with `stand-in:
# hits-cap` (or `stand-in: hits-cap in <phase>`) makes the account hit
# it, once, lifting STANDIN_CAP_SECS (default 3) seconds later. Every call
# is recorded in `calls`: `<ID> <phase> ran|capped <time>`.
cap_file="$rec_dir/cap_until"
account() {
  phase=${AI_SDLC_PHASE:-none} hit=0
  case "$prompt" in
    *"stand-in: hits-cap in $phase"*) hit=1 ;;
    *"stand-in: hits-cap in "*) ;;
    *"stand-in: hits-cap"*) hit=1 ;;
  esac
  if [ "$hit" = 1 ] && [ ! -f "$rec_dir/cap_hit" ]; then
    : > "$rec_dir/cap_hit"
    echo $(( $(date +%s) + ${STANDIN_CAP_SECS:-3} )) > "$cap_file"
  fi
  if [ -f "$cap_file" ] && [ "$(date +%s)" -lt "$(cat "$cap_file")" ]; then
    echo "$id $phase capped $(date +%s.%N)" >> "$rec_dir/calls"
    return 1
  fi
  echo "$id $phase ran $(date +%s.%N)" >> "$rec_dir/calls"
}
cap_until() { cat "$cap_file"; }
# A clock time as the CLIs print it: 6:44am / 6:44 AM (local time).
clock_lower() { date -d "@$1" +%-I:%M%P; }
clock_upper() { date -d "@$1" '+%-I:%M %p'; }
# An agent that tries to ask the user a question on the terminal.
ask_tty() {
  if ( exec 3<>/dev/tty ) 2>/dev/null; then
    echo "$id got a terminal" > "$rec_dir/$id.tty"
  else
    echo "$id has no terminal" > "$rec_dir/$id.tty"
  fi
}
# One line of JSON, as is (dash's echo would expand the \n in it).
say() { printf '%s\n' "$1"; }
