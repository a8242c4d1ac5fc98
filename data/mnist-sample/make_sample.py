"""Rebuilds this sample from the full MNIST: the first 6,000 training and the first 1,000 test
images with their labels, as gzipped IDX files with the original names (deterministic gzip).

    python3 data/mnist-sample/make_sample.py ../shared/data/mnist data/mnist-sample
"""
import gzip
import hashlib
import struct
import sys


def take(src, dst, n):
    raw = gzip.open(src, "rb").read()
    ndims = raw[3]
    dims = list(struct.unpack(">" + "I" * ndims, raw[4 : 4 + 4 * ndims]))
    per_item = 1
    for d in dims[1:]:
        per_item *= d
    dims[0] = n
    head = raw[:4] + struct.pack(">" + "I" * ndims, *dims)
    out = head + raw[4 + 4 * ndims : 4 + 4 * ndims + n * per_item]
    with open(dst, "wb") as f:
        with gzip.GzipFile(fileobj=f, mode="wb", mtime=0, filename="") as g:
            g.write(out)
    print(dst.split("/")[-1], hashlib.sha256(out).hexdigest())


def main():
    src, dst = sys.argv[1], sys.argv[2]
    for name, n in [
        ("train-images-idx3-ubyte", 6000),
        ("train-labels-idx1-ubyte", 6000),
        ("t10k-images-idx3-ubyte", 1000),
        ("t10k-labels-idx1-ubyte", 1000),
    ]:
        take(f"{src}/{name}.gz", f"{dst}/{name}.gz", n)


if __name__ == "__main__":
    main()
