#!/usr/bin/env bash
# The persistent feature cache (issue 16): train --cache-dir DIR --cache-keep keeps the
# features under a key; a second run with the same options reuses them (logged) and ends with
# bitwise the weights of the run that built them. One changed base weight (--init), one changed
# pixel of an image folder, or another --image-size gives another key (a rebuild, another
# entry). A truncated data file, a flipped byte, a deleted manifest, or a flipped byte in rank
# 1's file under mpirun -np 2 is detected, logged and rebuilt, with the same final weights.
# A --cache-dir without room for the entry is refused before training (exit 2); a disk that
# fills up while keeping (ulimit -f) warns, leaves nothing behind and training goes on.
# --cache-mem 0 (a spilled store) and mixed_bfloat16 (16-bit records) reuse bitwise too.
# `parafine cache ls|rm` list and remove entries and nothing else; bad usage exits 2.
# Usage: test_kept_cache_mpi.sh PARAFINE_BINARY PYTHON
set -euo pipefail
parafine=$1 python=$2
source "$(dirname "$0")/common.sh"

colour_h5 "$work/train.h5" 13 5
colour_h5 "$work/val.h5" 7 6
kc="$work/kc"
mkdir "$kc"
common="--batch-size 4 --head-units 8 --seed 3 --threads 1 --loader-threads 1"
epochs="--phase1-epochs 1 --phase2-epochs 1"
h5data="--train $work/train.h5 --val $work/val.h5 --weights none"
run() {  # run NAME NP ARGS...: train with the kept cache in $kc, saving NAME.h5, log in NAME.log
  local name=$1 np=$2 size=${SIZE:-32}
  shift 2
  mpirun -np "$np" "$parafine" train $common $epochs --image-size $size --cache-dir "$kc" --cache-keep --save "$work/$name.h5" \
    "$@" > "$work/$name.log" 2>&1 || { cat "$work/$name.log"; fail "$name"; }
}
key_of() { sed -n 's/.*\(kept as\|reused kept entry\) \([0-9a-f]\{32\}\).*/\2/p' "$work/$1.log" | head -1; }
expect_log() {  # expect_log NAME PATTERN WHAT
  grep -q -- "$2" "$work/$1.log" || { grep "cache" "$work/$1.log"; fail "$1: $3"; }
}
entries() { "$parafine" cache ls "$kc" | sed -n 's/^\([0-9]\+\) entr.*/\1/p'; }
same() { compare_weights "$work/$1.h5" "$work/$2.h5" 0 0 "$3" || fail "$3"; }

# Build, then reuse: bitwise the same run.
run built 1 $h5data
expect_log built "no kept entry for key" "the first run did not say it builds"
expect_log built "feature cache: kept as" "the first run did not keep its cache"
key=$(key_of built)
run reused 1 $h5data
expect_log reused "reused kept entry $key .*skipped the build; loaded and checked" "no reuse"
if grep -q "caching --train" "$work/reused.log"; then fail "the reusing run still ran the frozen network"; fi
grep -h "feature cache: \(kept\|reused\|no kept\)" "$work/built.log" "$work/reused.log"
same built reused "1 rank: reused vs built cache"
[ "$(entries)" = 1 ] || fail "cache ls: $(entries) entries after two runs of one key"

# --cache-mem is not part of the key: the kept records are loaded into a spilled store.
run spilled 1 $h5data --cache-mem 0
expect_log spilled "reused kept entry $key" "--cache-mem 0 did not reuse the entry"
same built spilled "1 rank: reused into a spilled store vs built"

# mixed_bfloat16 keeps 16-bit records (another key) and reuses them bitwise.
run bf16_built 1 $h5data --precision mixed_bfloat16
run bf16_reused 1 $h5data --precision mixed_bfloat16
expect_log bf16_reused "reused kept entry $(key_of bf16_built)" "mixed_bfloat16: no reuse"
[ "$(key_of bf16_built)" != "$key" ] || fail "mixed_bfloat16 has float32's key"
same bf16_built bf16_reused "mixed_bfloat16: reused vs built cache"

# Another --image-size: another key.
SIZE=48 run size48 1 $h5data
expect_log size48 "no kept entry" "--image-size 48 did not rebuild"
[ "$(key_of size48)" != "$key" ] || fail "--image-size 48 has the same key"

# One base weight changed: another key.
mpirun -np 1 "$parafine" train $common $h5data --image-size 32 --phase1-epochs 0 --phase2-epochs 0 --cache off \
  --save "$work/init.h5" > "$work/init.log" 2>&1 || { cat "$work/init.log"; fail init; }
"$python" - "$work/init.h5" "$work/init_mod.h5" <<'PY'
import shutil, sys, h5py
shutil.copy(sys.argv[1], sys.argv[2])
with h5py.File(sys.argv[2], "r+") as f:
    names = []
    f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) and "conv1_conv" in n and "kernel" in n else None)
    d = f[names[0]]
    v = d[()]
    v.flat[0] += 0.01
    d[...] = v
    print("changed", names[0], "[0] by 0.01")
PY
run init_a 1 --train "$work/train.h5" --val "$work/val.h5" --init "$work/init.h5"
run init_b 1 --train "$work/train.h5" --val "$work/val.h5" --init "$work/init_mod.h5"
# init.h5 holds the seeded starting weights of run 1: the key follows the weights' content, not
# where they came from.
expect_log init_a "reused kept entry $key" "--init of run 1's starting weights did not reuse its entry"
expect_log init_b "no kept entry" "a changed weight did not rebuild"
[ "$(key_of init_a)" != "$(key_of init_b)" ] || fail "a changed weight has the same key"

# An image folder: reused unchanged, another key after one pixel of one file changed.
"$python" - "$work/folder" <<'PY'
import sys, os, numpy as np
from PIL import Image
rng = np.random.default_rng(7)
for c, rgb in enumerate([(200, 60, 60), (60, 200, 60), (60, 60, 200)]):
    os.makedirs(f"{sys.argv[1]}/c{c}")
    for i in range(4):
        img = np.clip(np.array(rgb) + rng.normal(0, 20, (32, 32, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(f"{sys.argv[1]}/c{c}/{i}.png")
PY
run folder_a 1 --train "$work/folder" --weights none
run folder_b 1 --train "$work/folder" --weights none
expect_log folder_b "reused kept entry $(key_of folder_a)" "an unchanged folder was not reused"
same folder_a folder_b "image folder: reused vs built cache"
"$python" - "$work/folder/c1/2.png" <<'PY'
import sys, numpy as np
from PIL import Image
a = np.array(Image.open(sys.argv[1]))
a[5, 7, 0] ^= 1
Image.fromarray(a).save(sys.argv[1])
PY
run folder_c 1 --train "$work/folder" --weights none
expect_log folder_c "no kept entry" "one changed pixel did not rebuild"

# Damage: each is detected, logged, rebuilt, and the run is still bitwise run 1's.
entry="$kc/parafine-cache/$key"
truncate -s -100 "$entry/train.rank0.bin"
run truncated 1 $h5data
expect_log truncated "kept entry $key is damaged, rebuilding it: rank 0: .*train.rank0.bin: truncated" \
  "a truncated file was not reported"
expect_log truncated "feature cache: kept as $key" "the truncated entry was not rewritten"
same built truncated "rebuilt after truncation vs run 1"
"$python" - "$entry/train.rank0.bin" <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(5000); b = f.read(1); f.seek(5000); f.write(bytes([b[0] ^ 0x10]))
PY
run flipped 1 $h5data
expect_log flipped "train.rank0.bin: checksum mismatch in record" "a flipped byte was not reported"
same built flipped "rebuilt after a flipped byte vs run 1"
rm "$entry/manifest.json"
run no_manifest 1 $h5data
expect_log no_manifest "the kept entry is incomplete (no .*manifest.json)" "a missing manifest was not reported"
same built no_manifest "rebuilt after a deleted manifest vs run 1"
grep -h "feature cache: kept entry" "$work/truncated.log" "$work/flipped.log"

# Two ranks: reuse, and a damaged file of rank 1.
run np2_built 2 $h5data
run np2_reused 2 $h5data
key2=$(key_of np2_built)
expect_log np2_reused "reused kept entry $key2" "2 ranks: no reuse"
same np2_built np2_reused "2 ranks: reused vs built cache"
"$python" - "$kc/parafine-cache/$key2/val.rank1.bin" <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(3000); b = f.read(1); f.seek(3000); f.write(bytes([b[0] ^ 1]))
PY
run np2_flipped 2 $h5data
expect_log np2_flipped "rank 1: .*val.rank1.bin: checksum mismatch" "2 ranks: rank 1's damage not reported"
same np2_built np2_flipped "2 ranks: rebuilt after rank 1's damage vs built"

# A full disk while keeping (ulimit -f, without mpirun: its PMIx needs a few MiB of files, so
# the limit is 8 MiB and the cache a 10 MiB activation at conv3_block4_out at 160x160): a
# warning, nothing left, training finishes.
mkdir "$work/small"
set +e
(ulimit -f 8192; exec "$parafine" train $common $h5data --phase1-epochs 0 --phase2-epochs 1 \
  --image-size 160 --unfreeze-from conv4_block1_1_conv --cache-dir "$work/small" --cache-keep \
  > "$work/full.log" 2>&1)
code=$?
set -e
[ $code -eq 0 ] || { cat "$work/full.log"; fail "a full disk while keeping stopped training ($code)"; }
expect_log full "warning: feature cache: could not keep the features in --cache-dir $work/small" \
  "no warning for a full disk"
expect_log full "phase 2 epoch 1" "training did not go on after a full disk"
left=$(find "$work/small" -mindepth 1)
[ -z "$left" ] || fail "a full disk left $left"
grep -h "could not keep" "$work/full.log"

# A --cache-dir without room for the kept entry is refused before any training (exit 2). A
# tmpfs of 64 KiB needs mount (root, and a kernel that allows it): skipped where it fails.
mkdir "$work/tiny"
if mount -t tmpfs -o size=64k tmpfs "$work/tiny" 2> /dev/null; then
  set +e
  "$parafine" train $common $epochs $h5data --image-size 32 --cache-dir "$work/tiny" --cache-keep \
    > "$work/tiny.log" 2>&1
  code=$?
  set -e
  umount "$work/tiny"
  [ $code -eq 2 ] || { cat "$work/tiny.log"; fail "a --cache-dir without room: exit $code, not 2"; }
  expect_log tiny "cache-dir $work/tiny has .* free, the kept feature cache needs" \
    "no message naming the full --cache-dir"
  if grep -q "phase 1 epoch" "$work/tiny.log"; then fail "trained with no room to keep the cache"; fi
  grep -h "free, the kept" "$work/tiny.log"
else
  echo "SKIP: a --cache-dir without room (cannot mount a small tmpfs here)"
fi

# cache ls / rm.
"$parafine" cache ls "$kc"
# built, bf16_built, size48, init_b, folder_a, folder_c, np2_built
[ "$(entries)" = 7 ] || fail "cache ls: $(entries) entries, 7 expected"
"$parafine" cache ls "$kc" | grep -q "^$key .*complete *resnet50 *32 *1 " || fail "cache ls: no line for $key"
"$parafine" cache rm "$kc" "$key" > "$work/rm.log" || fail "cache rm KEY"
[ "$(entries)" = 6 ] || fail "cache rm KEY left $(entries) entries"
[ ! -e "$entry" ] || fail "cache rm left $entry"
echo "not a cache" > "$kc/notes.txt"
echo "not a cache either" > "$kc/parafine-cache/notes.txt"
mkdir "$kc/parafine-cache/mine"
expect_exit2() {  # expect_exit2 PATTERN COMMAND...: exit code 2 and PATTERN in stderr
  local pattern=$1
  shift
  set +e
  "$@" > "$work/usage.log" 2>&1
  local code=$?
  set -e
  [ $code -eq 2 ] || { cat "$work/usage.log"; fail "exit $code, not 2: $*"; }
  grep -q -- "$pattern" "$work/usage.log" || { cat "$work/usage.log"; fail "message lacks '$pattern': $*"; }
}
expect_exit2 "no entry '0123456789abcdef0123456789abcdef'" "$parafine" cache rm "$kc" 0123456789abcdef0123456789abcdef
expect_exit2 "does not exist" "$parafine" cache ls "$work/missing"
expect_exit2 "is not a directory" "$parafine" cache ls "$work/train.h5"
"$parafine" cache rm "$kc" --all || fail "cache rm --all"
[ "$(entries)" = "" ] || fail "cache rm --all left entries"
[ -f "$kc/notes.txt" ] && [ -f "$kc/parafine-cache/notes.txt" ] && [ -d "$kc/parafine-cache/mine" ] \
  || fail "cache rm --all removed something that is not an entry"
"$parafine" cache ls "$kc" | grep -q "no kept feature caches" || fail "cache ls after rm --all"

# Bad train usage: exit 2 naming the option.
expect_exit2 "--cache-keep needs --cache-dir" "$parafine" train $common $h5data --cache-keep
expect_exit2 "--cache-keep: nothing to keep with --cache off" \
  "$parafine" train $common $h5data --cache off --cache-keep --cache-dir "$kc"
expect_exit2 "--cache-dir $work/train.h5/sub does not exist" \
  "$parafine" train $common $h5data --cache-keep --cache-dir "$work/train.h5/sub"
echo "PASS"
