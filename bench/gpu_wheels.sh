#!/usr/bin/env bash
# Download the wheels a bare GPU machine lacks into .whl (ignored by git; carried to the machine),
# for bench/gpu_proof.sh. bitsandbytes keeps only its CUDA 13.0 and CPU libraries, so that the
# whole set stays under the 64 MiB a device call may carry (about 33 MB).
set -eu
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo /.whl/ >> .git/info/exclude
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl \
  trl==1.16.0 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 bitsandbytes==0.50.2 sqlalchemy==2.1.9 \
  alembic==1.20.1 mako grpcio==1.85.1 grpcio-health-checking==1.85.1 grpcio-reflection==1.85.1 \
  grpcio-status==1.85.1 googleapis-common-protos protobuf==7.36.2 setproctitle==1.3.8 transformers==5.23.0 \
  peft==0.21.2 liger-kernel
wheel=$(ls .whl/bitsandbytes-*.whl)
tmp=$(mktemp -d)
(cd "$tmp" && unzip -q "$OLDPWD/$wheel" && find bitsandbytes -name 'libbitsandbytes_*.so' \
   ! -name '*cuda130*' ! -name '*cpu*' -delete && rm "$OLDPWD/$wheel" && zip -qr "$OLDPWD/$wheel" .)
rm -rf "$tmp"
du -sh .whl
