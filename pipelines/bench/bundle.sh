#!/bin/sh
# bundle.sh DIR OBJ: finish `make gpu-bundle`. DIR/bin holds the tools
# built with an rpath of $ORIGIN/../lib (objects in OBJ); this adds
# gpu-ops and train_frames beside them, copies into DIR/lib every shared library they load that a
# GPU machine without Debian's -dev packages may lack (all but glibc, the
# compiler's C++ runtime and CUDA's own libraries, which come with the
# driver and toolkit there), with the unversioned names a link needs, and
# the headers of those libraries into DIR/include, so that nvcc can build
# the project there too (pipelines/bench/gpu.sh does when the binaries do
# not run). Debug sections are stripped to keep the bundle small (it
# travels with the working tree).
set -eu
dir=$1 obj=$2
[ -x "$dir/bin/lora-train" ] || { echo "bundle.sh: no $dir/bin/lora-train (run make gpu-bundle)" >&2; exit 1; }
cp "$obj/t/gpu-ops" "$obj/t/train_frames" "$dir/bin/"
rm -rf "$dir/lib" "$dir/include"
mkdir -p "$dir/lib" "$dir/include"
for b in "$dir"/bin/*; do
	strip --strip-debug "$b"
	ldd "$b" | awk '$2 == "=>" && $3 ~ /^\// { print $3 }'
done | sort -u | while read -r lib; do
	case $(basename "$lib") in
	libc.so*|libm.so*|libpthread.so*|libdl.so*|librt.so*|ld-linux*|libstdc++.so*|libgcc_s.so*) ;;
	libcuda*|libcublas*|libcudart*|libnccl*|libcudnn*) ;;
	*)
		base=$(basename "$lib")
		cp -L "$lib" "$dir/lib/$base"
		strip --strip-debug "$dir/lib/$base" 2>/dev/null || true
		ln -sf "$base" "$dir/lib/${base%%.so*}.so"
		;;
	esac
done
for h in jq.h jv.h xxhash.h zstd.h zstd_errors.h sentencepiece_processor.h; do
	cp "/usr/include/$h" "$dir/include/"
done
blas=$(pkg-config --cflags-only-I openblas 2>/dev/null | sed 's/^-I//; s/ .*//')
cp "${blas:-/usr/include/x86_64-linux-gnu}/cblas.h" "${blas:-/usr/include/x86_64-linux-gnu}/openblas_config.h" \
	"$dir/include/" 2>/dev/null || cp /usr/include/x86_64-linux-gnu/cblas.h "$dir/include/"
for b in "$dir"/bin/*; do
	if ldd "$b" | grep -q "not found"; then
		echo "bundle.sh: $b misses a library:" >&2
		ldd "$b" | grep "not found" >&2
		exit 1
	fi
done
du -sh "$dir/bin" "$dir/lib" "$dir/include"
echo "bundle.sh: $dir is ready; carry it (run's carry: [\"$dir\"]) beside the checkout"
