from oci_conda.cli import main

raise SystemExit(main())
