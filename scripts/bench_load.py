#!/usr/bin/env python
"""Benchmark DICOM loading: myoimg vs SimpleITK's ImageSeriesReader, same files, same run.

Usage::

    python scripts/bench_load.py                 # synthetic 384x288x30 MR series
    python scripts/bench_load.py --scan-files 5000   # also time scan() on 5,000 files
    python scripts/bench_load.py FOLDER          # a real folder (first non-localizer series)

Prints wall times (best of --repeat runs, warm file cache), the myoimg/SimpleITK ratio,
and peak memory (tracemalloc peak of Python/NumPy allocations during one myoimg load,
and the process's maximum resident set size).
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

from myoimg.io import format_series_table, load_series, scan, select_series


def make_series(folder: Path, n: int, rows: int = 288, cols: int = 384, uid=None, seed=0) -> None:
    """Write an axial MR series of n slices (random names, shuffled instance numbers)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    uid = uid or generate_uid()
    study, frame = generate_uid(), generate_uid()
    pixels = rng.integers(0, 4000, size=(rows, cols), dtype=np.uint16).tobytes()
    for k, inst in enumerate(rng.permutation(n) + 1):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MRImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.SeriesDescription = "MR", "t2_tirm_tra"
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, uid, frame
        ds.SeriesNumber, ds.InstanceNumber = 3, int(inst)
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [-150.0, -110.0, 5.0 * k]
        ds.PixelSpacing = [0.8, 0.8]
        ds.SliceThickness = 5.0
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows, ds.Columns = rows, cols
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.RescaleSlope, ds.RescaleIntercept = 1.5, -10
        ds.PixelData = pixels
        ds.save_as(folder / f"{rng.integers(0, 2**62):x}", enforce_file_format=True)


def best_of(fn, repeat: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", type=Path)
    parser.add_argument("--slices", type=int, default=30)
    parser.add_argument("--scan-files", type=int, default=0, help="also time scan() on N files")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        folder = args.folder
        if folder is None:
            folder = Path(tmp) / "series"
            make_series(folder, args.slices)
        result = scan(folder)
        info = select_series(result, None) if len(result.series) > 1 else result.series[0]
        print(format_series_table(result))
        print(f"\nseries {info.index}: {info.n_slices} images {info.columns}x{info.rows}")

        t_scan, _ = best_of(lambda: scan(folder), args.repeat)
        t_load, vol = best_of(lambda: load_series(info), args.repeat)

        def itk():
            reader = sitk.ImageSeriesReader()
            names = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), info.series_uid)
            reader.SetFileNames(names)
            reader.SetOutputPixelType(sitk.sitkFloat32)
            return reader.Execute()

        t_itk, ref = best_of(itk, args.repeat)
        same = np.allclose(vol.array, sitk.GetArrayViewFromImage(ref), atol=1e-3) and np.allclose(
            vol.image.GetOrigin(), ref.GetOrigin()
        )
        tracemalloc.start()
        load_series(info)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        nbytes = vol.array.nbytes
        print(f"scan():                {t_scan * 1000:8.1f} ms")
        print(f"myoimg load_series:    {t_load * 1000:8.1f} ms")
        print(f"SimpleITK series read: {t_itk * 1000:8.1f} ms  (GDCM sort + read, float32)")
        print(f"ratio myoimg/SimpleITK: {t_load / t_itk:.2f}   identical result: {same}")
        print(
            f"peak Python/NumPy memory during load: {peak / 2**20:.1f} MiB "
            f"(output volume {nbytes / 2**20:.1f} MiB); process max RSS "
            f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB"
        )

        if args.scan_files:
            big = Path(tmp) / "many"
            per = 100
            t0 = time.perf_counter()
            for s in range(int(np.ceil(args.scan_files / per))):
                make_series(big / f"s{s:03d}", min(per, args.scan_files - s * per), 64, 64, seed=s)
            print(f"\nwrote {args.scan_files} files in {time.perf_counter() - t0:.1f} s")
            t_big, res = best_of(lambda: scan(big), 1)
            print(
                f"scan() of {res.n_files} files: {t_big:.2f} s "
                f"({len(res.series)} series, {t_big / res.n_files * 1e3:.2f} ms/file)"
            )


if __name__ == "__main__":
    main()
