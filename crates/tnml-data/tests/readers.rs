//! Readers on real files: the shipped sample, the full MNIST when ../shared/data/mnist exists,
//! and every kind of broken file.

use std::io::Write;
use std::path::{Path, PathBuf};

use tnml_data::idx::encode_idx;
use tnml_data::{load, DataError, Dataset, Split};

fn sample_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist-sample")
}

fn shared_mnist() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/mnist");
    p.join("train-images-idx3-ubyte.gz").is_file().then_some(p)
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// Writes an MNIST-shaped test split (`n` images, `m` labels) into `dir`.
fn write_split(dir: &Path, n: usize, m: usize) {
    std::fs::write(
        dir.join("t10k-images-idx3-ubyte.gz"),
        gz(&encode_idx(&[n, 28, 28], &vec![7; n * 784])),
    )
    .unwrap();
    std::fs::write(
        dir.join("t10k-labels-idx1-ubyte.gz"),
        gz(&encode_idx(&[m], &vec![3; m])),
    )
    .unwrap();
}

#[test]
fn shipped_sample_loads_with_its_known_histograms() {
    let train = load(Dataset::MnistSample, &sample_dir(), Split::Train).unwrap();
    let test = load(Dataset::MnistSample, &sample_dir(), Split::Test).unwrap();
    assert_eq!(
        (train.len(), train.height, train.width, train.channels),
        (6000, 28, 28, 1)
    );
    assert_eq!(test.len(), 1000);
    assert_eq!(
        train.label_histogram(),
        vec![592, 671, 581, 608, 623, 514, 608, 651, 551, 601]
    );
    assert_eq!(
        test.label_histogram(),
        vec![85, 126, 116, 107, 110, 87, 87, 99, 89, 94]
    );
    // the first training image is MNIST's famous 5, the first test image a 7
    assert_eq!((train.labels[0], test.labels[0]), (5, 7));
    assert!(train.images.contains(&255) && train.images.contains(&0));
}

#[test]
fn full_mnist_when_present() {
    let Some(dir) = shared_mnist() else {
        eprintln!("../shared/data/mnist not found: full-set check skipped");
        return;
    };
    let t0 = std::time::Instant::now();
    let train = load(Dataset::Mnist, &dir, Split::Train).unwrap();
    let test = load(Dataset::Mnist, &dir, Split::Test).unwrap();
    eprintln!("full MNIST loaded in {:.2} s", t0.elapsed().as_secs_f64());
    assert_eq!((train.len(), test.len()), (60_000, 10_000));
    assert_eq!(
        train.label_histogram(),
        vec![5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    );
    assert_eq!(
        test.label_histogram(),
        vec![980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    );
    // the sample is exactly the head of the full set
    let sample = load(Dataset::MnistSample, &sample_dir(), Split::Train).unwrap();
    assert_eq!(sample.images[..], train.images[..sample.images.len()]);
    // the data directory may also be the parent holding mnist/
    let parent = dir.parent().unwrap();
    assert_eq!(load(Dataset::Mnist, parent, Split::Test).unwrap().len(), 10_000);
}

#[test]
fn raw_uncompressed_files_are_read_too() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("t10k-images-idx3-ubyte"),
        encode_idx(&[2, 28, 28], &[1; 2 * 784]),
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("t10k-labels-idx1-ubyte"),
        encode_idx(&[2], &[0, 9]),
    )
    .unwrap();
    let set = load(Dataset::Mnist, tmp.path(), Split::Test).unwrap();
    assert_eq!(set.labels, vec![0, 9]);
}

#[test]
fn missing_files_say_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    let e = load(Dataset::FashionMnist, tmp.path(), Split::Train).unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("missing train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz"),
        "{text}"
    );
    // the name front ends put in their hint (`tnml data fetch --dataset fashion-mnist`)
    assert!(
        matches!(
            e,
            tnml_data::DataError::NotFound {
                cli_name: "fashion-mnist",
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn count_mismatch_is_reported_with_both_files() {
    let tmp = tempfile::tempdir().unwrap();
    write_split(tmp.path(), 3, 2);
    let e = load(Dataset::Mnist, tmp.path(), Split::Test).unwrap_err();
    assert!(
        matches!(
            e,
            DataError::CountMismatch {
                images: 3,
                labels: 2,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("has 3 images but"), "{e}");
}

#[test]
fn swapped_files_fail_on_the_dimension_count() {
    let tmp = tempfile::tempdir().unwrap();
    write_split(tmp.path(), 2, 2);
    let img = tmp.path().join("t10k-images-idx3-ubyte.gz");
    let lab = tmp.path().join("t10k-labels-idx1-ubyte.gz");
    let (a, b) = (std::fs::read(&img).unwrap(), std::fs::read(&lab).unwrap());
    std::fs::write(&img, b).unwrap();
    std::fs::write(&lab, a).unwrap();
    let e = load(Dataset::Mnist, tmp.path(), Split::Test)
        .unwrap_err()
        .to_string();
    assert!(e.ends_with("IDX file has 1 dimensions, expected 3"), "{e}");
}

#[test]
fn wrong_magic_truncated_file_and_truncated_gzip() {
    let tmp = tempfile::tempdir().unwrap();
    write_split(tmp.path(), 2, 2);
    let img = tmp.path().join("t10k-images-idx3-ubyte.gz");
    // wrong magic: a PNG header where the IDX header should be
    let mut bad = b"\x89PNG".to_vec();
    bad.extend(vec![0u8; 100]);
    std::fs::write(&img, gz(&bad)).unwrap();
    let e = load(Dataset::Mnist, tmp.path(), Split::Test).unwrap_err();
    assert!(
        matches!(
            e,
            DataError::BadMagic {
                found: 0x89504e47,
                ..
            }
        ),
        "{e}"
    );
    // a file cut short: the header promises two images, one is there
    let mut short = encode_idx(&[2, 28, 28], &[0; 2 * 784]);
    short.truncate(16 + 784);
    std::fs::write(&img, gz(&short)).unwrap();
    let e = load(Dataset::Mnist, tmp.path(), Split::Test)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("truncated: header promises 1584 bytes, file has 800"),
        "{e}"
    );
    // a gzip stream cut short
    let full = gz(&encode_idx(
        &[2, 28, 28],
        &(0..2 * 784).map(|i| (i * 31 % 251) as u8).collect::<Vec<_>>(),
    ));
    std::fs::write(&img, &full[..full.len() / 2]).unwrap();
    let e = load(Dataset::Mnist, tmp.path(), Split::Test).unwrap_err();
    assert!(matches!(e, DataError::Gzip { .. }), "{e}");
    assert!(e.to_string().contains("bad or truncated gzip stream"), "{e}");
}

#[test]
fn labels_out_of_range_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    write_split(tmp.path(), 2, 2);
    std::fs::write(
        tmp.path().join("t10k-labels-idx1-ubyte.gz"),
        gz(&encode_idx(&[2], &[1, 12])),
    )
    .unwrap();
    let e = load(Dataset::Mnist, tmp.path(), Split::Test)
        .unwrap_err()
        .to_string();
    assert!(e.ends_with("label 12 at index 1 is outside 0..10"), "{e}");
}

#[test]
fn cifar_batches_load_and_bad_records_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cifar-10-batches-bin");
    std::fs::create_dir(&dir).unwrap();
    let mut rec = vec![0u8; 3 * 3073];
    for (i, r) in rec.chunks_mut(3073).enumerate() {
        r[0] = i as u8 * 4;
        r[1 + 1024] = 100 + i as u8; // first green pixel
    }
    std::fs::write(dir.join("test_batch.bin"), &rec).unwrap();
    let set = load(Dataset::Cifar10, tmp.path(), Split::Test).unwrap();
    assert_eq!((set.len(), set.channels, set.height, set.width), (3, 3, 32, 32));
    assert_eq!(set.labels, vec![0, 4, 8]);
    assert_eq!(set.image(2)[1024], 102);
    std::fs::write(dir.join("test_batch.bin"), &rec[..3073 * 2 + 100]).unwrap();
    let e = load(Dataset::Cifar10, tmp.path(), Split::Test).unwrap_err();
    assert!(matches!(e, DataError::CifarRecordLength { len: 6246, .. }), "{e}");
}

#[test]
fn transforms_on_real_digits() {
    let set = load(Dataset::MnistSample, &sample_dir(), Split::Test)
        .unwrap()
        .take(10);
    let im = tnml_data::Images::from_set(&set);
    assert!(im.data.iter().all(|v| (0.0..=1.0).contains(v)));
    let small = im.avg_pool2x2().unwrap();
    assert_eq!((small.height, small.width, small.data.len()), (14, 14, 10 * 196));
    // pooling preserves the mean brightness of every image
    for i in 0..10 {
        let (a, b) = (
            im.image(i).iter().sum::<f32>() / 784.0,
            small.image(i).iter().sum::<f32>() / 196.0,
        );
        assert!((a - b).abs() < 1e-5);
    }
    let padded = im.pad_to(32, 32).unwrap();
    assert_eq!(
        padded.image(0).iter().sum::<f32>(),
        im.image(0).iter().sum::<f32>()
    );
    assert_eq!(padded.image(0)[..64], [0.0; 64]);
}

#[test]
fn select_and_random_subset_keep_images_with_their_labels() {
    let set = tnml_data::ImageSet {
        dataset: tnml_data::Dataset::Mnist,
        images: (0..5u8).flat_map(|i| [i, i, i, i]).collect(),
        labels: vec![0, 1, 2, 3, 4],
        channels: 1,
        height: 2,
        width: 2,
    };
    let picked = set.select(&[3, 0]);
    assert_eq!(picked.labels, vec![3, 0]);
    assert_eq!(picked.images, vec![3, 3, 3, 3, 0, 0, 0, 0]);
    let sub = set.random_subset(3, 7);
    assert_eq!(sub.len(), 3);
    assert_eq!(sub, set.random_subset(3, 7), "seeded");
    for i in 0..3 {
        assert_eq!(sub.image(i)[0], sub.labels[i], "image and label travel together");
    }
    assert_eq!(set.random_subset(99, 1).len(), 5);
}

/// gzip as `gzip -t` sees it: several members are one file; what follows the data is an error;
/// a stream that inflates past what its header promises is refused after that much.
#[test]
fn gzip_members_trailing_bytes_and_bombs() {
    let tmp = tempfile::tempdir().unwrap();
    write_split(tmp.path(), 2, 2);
    let img = tmp.path().join("t10k-images-idx3-ubyte.gz");
    let idx = encode_idx(&[2, 28, 28], &vec![5; 2 * 784]);
    // two members (cat a.gz b.gz): read as one stream
    let (a, b) = idx.split_at(700);
    let mut two = gz(a);
    two.extend(gz(b));
    std::fs::write(&img, &two).unwrap();
    let set = load(Dataset::Mnist, tmp.path(), Split::Test).unwrap();
    assert_eq!((set.len(), set.image(1)[783]), (2, 5));
    // garbage after the stream
    let mut trailing = gz(&idx);
    trailing.extend(b"garbage after the gzip stream");
    std::fs::write(&img, &trailing).unwrap();
    let e = load(Dataset::Mnist, tmp.path(), Split::Test).unwrap_err();
    assert!(matches!(e, DataError::Gzip { .. }), "{e}");
    // a bomb: the header promises 2 images, the stream inflates to 64 MB
    let mut bomb = idx.clone();
    bomb.extend(vec![0u8; 64 << 20]);
    std::fs::write(&img, gz(&bomb)).unwrap();
    let e = load(Dataset::Mnist, tmp.path(), Split::Test).unwrap_err();
    assert!(matches!(e, DataError::Overlong { expected: 1584, .. }), "{e}");
    // a header that claims more than any data set
    let mut huge = encode_idx(&[1, 28, 28], &[0; 784]);
    huge[4..8].copy_from_slice(&4_000_000u32.to_be_bytes());
    std::fs::write(&img, gz(&huge)).unwrap();
    let e = load(Dataset::Mnist, tmp.path(), Split::Test).unwrap_err();
    assert!(matches!(e, DataError::TooLarge { .. }), "{e}");
}
