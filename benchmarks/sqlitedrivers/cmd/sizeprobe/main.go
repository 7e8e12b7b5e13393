// Command sizeprobe is a tiny program that opens a database, used to
// measure build time and binary size per driver (-tags modernc|mattn|ncruces;
// no tag = database/sql baseline without a driver).
package main

import (
	"database/sql"
	"fmt"
	"os"
)

func main() {
	db, err := sql.Open(driverName, "file:"+os.TempDir()+"/sizeprobe.db")
	if err != nil {
		fmt.Println("open:", err)
		return
	}
	defer db.Close()
	var v string
	if err := db.QueryRow("SELECT sqlite_version()").Scan(&v); err != nil {
		fmt.Println("query:", err)
		return
	}
	fmt.Println(driverName, v)
}
