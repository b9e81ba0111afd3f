#!/usr/bin/env bash
# The full campaigns, unattended beside a working session, from a worktree of their own so
# that the records name a clean commit while the session edits the checkout.
#
#   bash tools/campaigns.sh start     worktree ../camp at this HEAD; E2E (2 workers), E2E ranks, GLUE
#   bash tools/campaigns.sh collect   copy finished records and the stash into this checkout
#   bash tools/campaigns.sh stop      SIGTERM the workers (each writes a checkpoint; only processes
#                                     running in the worktree, not a CI's tests elsewhere), stash the
#                                     small checkpoints, collect; then commit results/
#   bash tools/campaigns.sh plan      both campaigns' plans as the worktree sees them (runs under
#                                     way shown as part done, which this checkout's plan cannot)
#
# The runs resume where `stop` left them: on this machine from results/_scratch, on a new one
# from the committed results/_resume (LoRA-sized checkpoints only; see README, "stash").
# `start` refuses on a CPU without native bf16: the runs are bf16 (precision.CAMPAIGN_PRECISION).
# CAMP (the worktree), LOGS, LORABOOK_DATA, E2E_WORKERS, E2E_ONLY and GLUE_ONLY may be set; the
# venv is this checkout's. E2E_WORKERS=1 runs one E2E job on both cores. Measured on the 2-core
# machine (2026-12-01/02): an FT batch takes 2.75 s on two threads with nothing beside it and
# 4.1-5.2 s on one beside GLUE, 1.5-1.9×, so the second core buys FT more than half a core; an
# FT run (5,260 batches, then ~15 min of test decoding on two threads: its 1.6 GB checkpoint is
# too big to stash) spans two sessions on both cores, about three beside GLUE.
# E2E_ONLY / GLUE_ONLY: the jobs to run (`--only`, names as `plan` prints them), e.g.
# E2E_WORKERS=1 E2E_ONLY=ft-seed1, or E2E_ONLY=lora-seed when no FT run fits before the end.
# E2E_BESIDE=1: the E2E jobs one at a time on core 0 (the runs, then the ranks stage), beside
# GLUE on the other cores (one worker a core): an FT run that spans sessions on a machine kept
# between them while GLUE goes on (E2E_BESIDE=1 E2E_ONLY="ft-seed1 ft-seed2 lora-r": FT's seeds,
# then Table 18's ranks). Once both are done, start again without it: GLUE gets both cores.
# GLUE_ALONE=1: only GLUE's campaign, a worker a core (its Section 7 cells decide three of the
# paper's claims; Table 18's ranks decide none and can wait).
set -euo pipefail
repo=$(git rev-parse --show-toplevel)
camp=${CAMP:-$(dirname "$repo")/camp}
logs=${LOGS:-$(dirname "$repo")/logs}
data=${LORABOOK_DATA:-$(dirname "$repo")/shared/data}
py=$repo/.venv/bin/python
mkdir -p "$logs"

camp_pids() {  # the processes matching $1 that run in the worktree (a CI's tests elsewhere do not)
    local pid
    for pid in $(pgrep -f "$1"); do
        [ "$(readlink "/proc/$pid/cwd")" = "$(realpath "$camp")" ] && echo "$pid"
    done
    return 0
}

in_camp() {  # the campaign's own code, not this checkout's (the venv installs this one)
    (cd "$camp" && PYTHONPATH="$camp/src" LORABOOK_DATA="$data" "$py" -m "$@")
}

case "${1:-}" in
start)
    running=$([ -d "$camp" ] && camp_pids "lorabook.e2e.campaign|lorabook.glue.full_campaign" || true)
    if [ -n "$running" ]; then  # in the worktree only, as `stop` (a CI's tests elsewhere are not one)
        echo "a campaign is running already in $camp: $(ps -o pid=,args= -p "${running//$'\n'/,}")"
        exit 1
    fi
    # Its runs are bf16 (CAMPAIGN_PRECISION): on a CPU that only emulates it, refuse here, not
    # in the log an hour later.
    native=$(PYTHONPATH="$repo/src" "$py" -c '
from lorabook.cli import UserError
from lorabook.precision import require_native_bf16
try:
    require_native_bf16("The campaign")
except UserError as error:
    print(error)') || exit 1
    [ -z "$native" ] || { echo "error: $native"; exit 1; }
    [ -z "$(git -C "$repo" status --porcelain -uno)" ] || { echo "commit first: records must name a clean commit"; exit 1; }
    if [ -d "$camp" ]; then
        git -C "$camp" checkout -q -f --detach "$(git -C "$repo" rev-parse HEAD)"
    else
        git -C "$repo" worktree prune
        git -C "$repo" worktree add -q --detach "$camp" HEAD
    fi
    echo "campaign worktree $camp at $(git -C "$camp" log --oneline -1)"
    e2e="'$py' -m lorabook.e2e.campaign pilot --then-runs ${E2E_ONLY:+--only $E2E_ONLY}"
    ranks="'$py' -m lorabook.e2e.campaign ranks ${E2E_ONLY:+--only $E2E_ONLY}"
    glue="'$py' -m lorabook.glue.full_campaign all ${GLUE_ONLY:+--only $GLUE_ONLY}"
    if [ -n "${GLUE_ALONE:-}" ]; then
        jobs="$glue --workers $(nproc)"
    elif [ -n "${E2E_BESIDE:-}" ]; then  # each pinned to its cores: run_jobs counts what it may use
        rest=1-$(($(nproc) - 1))
        jobs="(taskset -c 0 $e2e --workers 1; taskset -c 0 $ranks --workers 1) &
              taskset -c $rest $glue --workers $(($(nproc) - 1)); wait"
    else  # Table 18's ranks before GLUE's Section 7 cells: both are chapter 6's evidence
        jobs="$e2e --workers ${E2E_WORKERS:-2}; $ranks --workers 2; $glue --workers 2"
    fi
    nohup setsid bash -c "
        cd '$camp' && export PYTHONPATH='$camp/src' LORABOOK_DATA='$data'
        $jobs
    " >>"$logs/campaigns.log" 2>&1 &
    sleep 1
    echo -10 >"/proc/$!/autogroup" 2>/dev/null || true  # the session's own jobs yield to it
    echo "started (log: $logs/campaigns.log; workers' logs: $camp/results/_logs/)"
    ;;
collect)
    for kind in e2e glue; do  # records and their outputs (no file over 10 MB: no weights)
        if [ -d "$camp/results/$kind" ]; then  # (cp and find: a new machine may lack rsync)
            (cd "$camp/results" && find "$kind" -type f -size -10485760c -print0 |
                xargs -0 -r cp -p --parents -t "$repo/results/")
        fi
    done
    rm -rf "$repo/results/_resume"  # the stash as it is now: dropped copies go here too
    if [ -d "$camp/results/_resume" ]; then
        cp -a "$camp/results/_resume" "$repo/results/_resume"
    fi
    grep -rl --include='*.json' -e '-dirty' "$repo/results" || true
    git -C "$repo" status --short -- results
    ;;
stop)
    camp_pids "lorabook.e2e.campaign|lorabook.glue.full_campaign" | xargs -r kill -9  # no new jobs
    camp_pids "lorabook.e2e --method|lorabook.glue --task" | xargs -r kill -TERM  # each checkpoints
    while [ -n "$(camp_pids "lorabook.e2e --method|lorabook.glue --task")" ]; do sleep 2; done
    in_camp lorabook.e2e.campaign stash
    in_camp lorabook.glue.full_campaign stash
    bash "$0" collect
    ;;
plan)  # what is under way and the totals (each job's row: `python -m ... plan` in $camp)
    for kind in lorabook.e2e.campaign lorabook.glue.full_campaign; do
        OMP_NUM_THREADS=1 in_camp $kind plan | grep -v -E "^(done|todo|wait) "
    done
    ;;
*)
    awk 'NR > 1 && !/^#/ { exit } NR > 1' "$0"  # the comment above
    exit 2
    ;;
esac
