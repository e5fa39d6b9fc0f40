#!/bin/bash -eu
# ClusterFuzzLite / OSS-Fuzz build script (docs/scale.md#fuzzing-in-ci), run by the image of
# .clusterfuzzlite/Dockerfile in $SRC/lpjson-harness, with $OUT the output directory.
#
# Every fuzz/fuzz_*.py is an atheris target: compile_python_fuzzer packages it with
# PyInstaller into $OUT/<target>.pkg and writes the $OUT/<target> wrapper that
# ClusterFuzzLite runs. Beside each: <target>_seed_corpus.zip (fuzz/seeds/) and
# <target>.dict (fuzz/lpjson.dict), written by make_corpus.py (tests/test_clusterfuzzlite.py
# runs that step and packages a target the same way).

# The package and the fuzz extra (atheris is already in the image).
pip3 install '.[fuzz]'

# Seed corpus zips and dictionaries.
python3 .clusterfuzzlite/make_corpus.py "$OUT"

# The targets. --paths: the checkout, so that PyInstaller finds harness however pip
# installed it (an editable install hides it from PyInstaller's analysis).
for fuzzer in fuzz/fuzz_*.py; do
  compile_python_fuzzer "$fuzzer" --paths "$SRC/lpjson-harness"
done
