from oci_conda.entry import main

raise SystemExit(main())
